"""The verdict in words a person reads once (pure): a one-sentence headline, then the evidence.

    headline(v)            # the bottleneck, the number, what to change (and, after a fix, what it gained)
    verdict_text(v, fix)   # the headline, then the evidence, the next constraint, a second answer, what to try

The CLI, the notebooks and the HTML report all print these, so a reader sees the same words
everywhere. No sentence nests parentheses (`nested_parentheses` finds any that do).
"""
from __future__ import annotations

from .causes import CAUSES
from .machine import cost_text
from .remedies import Fix


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def bottleneck(v) -> str:
    """What binds, as the headline opens."""
    sh = v.shared
    if v.machine_bound and sh:
        if v.cause == "client":
            how = "about as much CPU per byte as" if sh.client_close else "more CPU per byte than"
            fill = "come near filling" if sh.near_full else "fill"
            return (f"The lab's own client binds: on this machine's {sh.cpus} CPUs, which the path's programs {fill}, "
                    f"it needs {how} the server's programs together")
        top = next((p for p in sh.server if p.name == v.program), sh.costliest)
        two = f", about as much as {v.alternative.hop}" if v.alternative and v.alternative.cause == "cpu" else ""
        fill = "come near filling" if sh.near_full else "fill"
        return (f"The path's programs {fill} this machine's {sh.cpus} CPUs and {top.name} costs the most per byte, "
                f"{cost_text(top.cost).split(',')[0]}{two}, so {v.hop} binds")
    if v.cause == "down":
        return v.summary.rstrip(".")
    if v.at_capacity:
        if v.cause == "link":
            return f"The {v.capacity_hop} link binds: the path runs at its iperf3 capacity"
        return f"The path runs at the {v.capacity_hop} hop's capacity, and {v.what} binds there"
    return f"{v.hop} binds: {v.what}" if v.hop else v.summary.rstrip(".")


def change(v, fix: Fix | None = None) -> str:
    """What to change: measured when `fix` was run, else the candidates to try, else why there are none."""
    if fix is not None and fix.before is not None:
        b, w = fix.before, fix.best
        if w is None:
            tried = _or([t.name for t in fix.trials]) if fix.trials else "no remedy"
            return f"{tried} did not beat the runs' spread, so the settings stay"
        return (f"{w.name} took one pull from {b.one.median:.0f} to {w.one.median:.0f} MB/s and {b.parallel} at once "
                f"from {b.many.median:.0f} to {w.many.median:.0f} MB/s")
    if v.remedies:
        return f"try {_or([r.name for r in v.remedies])}: `labkit survey --fix` measures them"
    return v.no_remedy


def headline(v, fix: Fix | None = None) -> str:
    """One sentence: the bottleneck, the number, what to change and, after a fix, what it gained."""
    measured = fix is not None and fix.before is not None       # the fix's own before/after are the numbers then
    rate = f"the client gets {v.rate:.0f} MB/s" if v.rate and not measured else ""
    parts = [bottleneck(v), rate, change(v, fix)]
    return "; ".join(p for p in parts if p) + "."


def verdict_text(v, fix: Fix | None = None) -> str:
    """The headline, then the evidence: what a person reads in the CLI, a notebook or the report."""
    lines = [headline(v, fix), f"  {v.summary}", *[f"  - {e}" for e in v.evidence]]
    if v.next:
        lines.append(f"  next: {v.next.hop}, {CAUSES.get(v.next.cause, v.next.cause)}: " + "; ".join(v.next.evidence))
    if v.alternative:
        a = v.alternative
        lines.append(f"  or: {a.hop}, {CAUSES.get(a.cause, a.cause)}: {a.why}; to tell them apart: {a.separate}")
    if fix is not None and fix.before is not None:
        lines.append(f"  tried, {fix.before.one.runs} runs each, one pull and {fix.before.parallel} at once:")
        for t in [fix.before, *fix.trials]:
            lines.append(f"    {t.name}: one pull {t.one}; {t.parallel} at once {t.many}"
                         + (f"; {t.failures} failed" if t.failures else ""))
        if fix.bundle:
            lines.append(f"  bundle with the winner: {fix.bundle}")
    if fix is not None:
        lines += [f"  note: {n}" for n in fix.notes]
    elif v.remedies:
        lines += [f"  to try: {r.name}, {' '.join('--set ' + x for x in r.set)}: {r.why}" for r in v.remedies]
    return "\n".join(lines + [f"  note: {n}" for n in v.notes])


def nested_parentheses(text: str) -> list[str]:
    """The parenthesised parts of `text` that hold another parenthesis (none, in words for a person)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth == 1:
                start = i
            elif depth == 2:
                out.append(text[start:])
        elif ch == ")":
            depth = max(0, depth - 1)
    return [o[: o.find(")") + 1] if ")" in o else o for o in out]
