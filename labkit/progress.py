"""Progress bars: tqdm on stderr in a terminal; in a Jupyter kernel, one HTML line updated in place.

The notebook bar is no widget (tqdm.auto's is an ipywidget): a saved notebook reopened shows the bar's
last state, "survey: 13/13 steps in 21 s", not "Error displaying widget: model not found".
"""
from __future__ import annotations

import html
import io

from tqdm.std import tqdm as _tqdm


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbval, nbclient), False in a terminal or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class HtmlBar(_tqdm):
    """tqdm drawn as one quiet HTML line in the cell's output (a display updated in place)."""

    def __init__(self, *args, **kw):
        self._handle = None
        kw["file"] = io.StringIO()            # nothing on stderr: the line is the display below
        kw.setdefault("mininterval", 0.5)
        super().__init__(*args, **kw)

    def line(self, done: bool = False) -> str:
        d = self.format_dict
        what = html.escape(d.get("prefix") or "")
        unit = html.escape(d.get("unit") or "it")
        took = self.format_interval(d["elapsed"])
        if done:
            return (f'<div class="lk-progress" style="color:#666;font-size:12px">{what}: {self.n} {unit}'
                    f'{"s" if self.n != 1 and unit != "it" else ""} in {took}</div>')
        total = d.get("total")
        left = ""
        if total and self.n and d["elapsed"]:
            left = f", about {self.format_interval(d['elapsed'] / self.n * (total - self.n))} left"
        post = html.escape(d.get("postfix") or "")
        bar = f'<progress value="{self.n}" max="{total or 1}" style="width:220px;vertical-align:middle"></progress>'
        return (f'<div class="lk-progress" style="color:#444;font-size:12px">{bar} {what}: {self.n}/{total or "?"} '
                f'{unit} · {took}{left}{" · " + post if post else ""}</div>')

    def display(self, msg=None, pos=None):
        from IPython.display import HTML, display
        text = self.line(done=msg == "" or self.disable)
        if self._handle is None:
            self._handle = display(HTML(text), display_id=True)
        else:
            self._handle.update(HTML(text))
        return True

    def close(self):
        if self.disable:
            return
        super().close()                        # std's close ends with display(msg="") when leave=False
        if self.leave and self._handle is not None:
            from IPython.display import HTML
            self._handle.update(HTML(self.line(done=True)))


def bar(*args, **kw) -> _tqdm:
    """A progress bar for labkit's long steps: tqdm's arguments; HTML in a notebook, text on stderr elsewhere."""
    return (HtmlBar if in_kernel() else _tqdm)(*args, **kw)
