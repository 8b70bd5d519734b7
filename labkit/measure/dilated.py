"""A measured table from a time-dilated lab (labkit.config.dilation) read back into the seed's time, in one place.

    table, notes = read_back(table, k, path, ratio)     # a survey's table (its rows from raw PullRuns)
    row = row_back(raw_row, k)                          # one PullRun's row (PullRun.row() calls it)

Rates x k, times / k (`to_real_time`, which refuses a numeric column without a rule), a `k` column on every
table (k = 1 too: every table says k). CPU percentages (`busiest_cpu`, `client_cpu`, % of this machine's core)
are read back x k: the same work in 1/k of the time, as k = 1 measures it (a process held to 1/(ratio k) of a
core reads ~100/ratio %, as at k = 1). Shares of an allowance (`client_cap_use`, `client_throttled`,
`kernel_share`) and CPU-seconds per GB are kept. A PullRun's row is read back once, by PullRun itself; a
survey summarizes the runs' measured values and reads its table back once here: never twice.

The kernel's softirq work is not dilated: its measured share of the CPU per GB is said for each pull row
(`kernel_note`), with `kernel_understatement`'s estimate of how much of the seed's CPU per byte the model
leaves out (where the share is large the model is optimistic).
"""
from __future__ import annotations

import pandas as pd

from ..config.dilation import kernel_understatement, row_to_real_time, to_real_time
from ..path import ServingPath
from ..records import cost

CPU_SHARES = {"busiest_cpu": "rate", "client_cpu": "rate"}    # % of this machine's core per second of dilated time: x k
SHARES = {"client_cap": "keep", "client_cap_use": "keep", "client_throttled": "keep", "kernel_share": "keep"}
WORDS = {c: "keep" for c in ("kind", "point", "through", "busiest", "client", "error", "sha256_ok")}  # (all-NaN when empty)


def row_back(row: dict, k: float) -> dict:
    """One pull row in real time, with its `k` (the identity at k = 1, `k` added)."""
    return row_to_real_time(row, k, {**WORDS, **CPU_SHARES, **SHARES})


def kernel_note(label: str, costs: dict, ratio: float, k: float) -> str | None:
    """What the model leaves out of the seed's CPU at `label` from its costs per GB (None: nothing measured)."""
    soft, server = costs.get(cost.SOFTIRQ), sum(v for v in cost.servers(costs).values() if v)
    if soft is None or not server:
        return None
    under = kernel_understatement(soft, server * ratio, ratio, k)
    return (f"not dilated: the kernel's softirq work at {label}: {soft:.3f} CPU-s/GB against the server's "
            f"{server:.3f} ({soft / (soft + server):.0%} of it, on this machine's cores): the model leaves out about "
            f"{under:.0%} of the seed's CPU per byte (kernel_understatement): optimistic by that much where the CPU binds")


def read_back(table: pd.DataFrame, k: float, path: ServingPath, ratio: float = 1.0) -> tuple[pd.DataFrame, list[str]]:
    """`table` in real time with its `k` column, and the notes a dilated run carries (none at k = 1)."""
    out = to_real_time(table, k, {**WORDS, **CPU_SHARES, **SHARES})
    if k == 1:
        return out, []
    notes = [f"time dilation k = {k:g}: rates read back x {k:g}, times / {k:g}; busiest_cpu and client_cpu x {k:g} "
             "(% of this machine's core, as k = 1 measures it)"]
    for _, row in table.iterrows():
        if row.get("kind") == "pull" and (line := kernel_note(f"{row['point']} x{int(row['parallel'])}",
                                                              cost.from_row(row, path), ratio, k)):
            notes.append(line)
    return out, notes
