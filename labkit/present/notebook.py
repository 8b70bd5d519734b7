"""What a notebook shows, as a person reads it in JupyterLab: figures drawn offline, messages by weight,
the verdict as formatted text, files as links.

    lk.notebook()            # first code cell: BokehJS inline (from the installed bokeh), labkit's messages quiet
    lk.show(figure)          # a bokeh figure; where BokehJS cannot run, the cell says so in words
    lk.show_verdict(v, fix)  # the verdict's words, headline first
    lk.link(path)            # a file the notebook made, as a link JupyterLab opens
"""
from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path

import pandas as pd
from bokeh.embed.notebook import notebook_content
from bokeh.io import output_notebook
from bokeh.resources import Resources
from bokeh.util.serialization import make_globally_unique_css_safe_id
from IPython import get_ipython
from IPython.display import HTML, display

from ..analyze.words import verdict_text

NOT_RUN = ("This figure is drawn by BokehJS in the page, and its script has not run here (a notebook opened "
           "without running it, and not trusted). Run the notebook, or File → Trust Notebook, to draw it.")
NOT_LOADED = ("This figure did not draw: BokehJS is not loaded in this page. Run the notebook's first code cell "
              "(lk.notebook() loads it from the installed bokeh, no network), then this cell again.")
# The figure's script runs when the output is rendered, which may be before its div is in the page: it waits
# for both the div and BokehJS, then embeds (bokeh's own script, unchanged) and takes the sentence away.
_WAIT = """(function (root) {
  let tries = 0;
  const timer = setInterval(function () {
    const note = document.getElementById(%(note)r);
    if (root.Bokeh !== undefined && document.getElementById(%(div)r)) {
      clearInterval(timer);
      if (note) note.remove();
      %(script)s
    } else if (++tries > 200) { clearInterval(timer); if (note) note.textContent = %(msg)r; }
  }, 50);
})(window);"""


class NotebookLog(logging.Handler):
    """labkit's messages in a notebook: routine ones as one quiet status line per cell (updated in place,
    not stderr); warnings as a visible note."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._cell, self._handle, self._count = None, None, 0
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            self.messages.append(msg)
            if record.levelno >= logging.WARNING:
                display(HTML(note_html(msg)))
                return
            shell = get_ipython()
            cell = shell.execution_count if shell else None
            self._count = self._count + 1 if cell == self._cell else 1
            line = HTML(f'<div class="lk-status" style="color:#777;font-size:12px">labkit: {html.escape(msg)}'
                        + (f" ({self._count} messages)" if self._count > 1 else "") + "</div>")
            if cell != self._cell or self._handle is None:
                self._cell, self._handle = cell, display(line, display_id=True)
            else:
                self._handle.update(line)
        except Exception:                    # a message must never break the measurement
            self.handleError(record)


def note_html(text: str) -> str:
    """A note the reader must see (a warning that changes what the outputs show)."""
    return ('<div class="lk-note" style="border-left:4px solid #e0a800;background:#fff8e1;padding:6px 10px;'
            f'margin:4px 0;white-space:normal">Note: {html.escape(text)}</div>')


_log_handler: NotebookLog | None = None


def setup() -> None:
    """Once, in a notebook's first code cell: BokehJS inline from the installed bokeh (no network beyond the
    notebook's own server), and labkit's messages as status lines and notes instead of stderr."""
    global _log_handler
    # inline, and only BokehJS's core (labkit's figures use no widgets, tables, WebGL or MathJax): ~1.3 MB
    output_notebook(resources=Resources(mode="inline", components=["bokeh"]), hide_banner=True)
    log = logging.getLogger("labkit")
    for h in list(log.handlers):
        if not isinstance(h, NotebookLog):
            log.removeHandler(h)
    if _log_handler is None:
        _log_handler = NotebookLog()
    if _log_handler not in log.handlers:
        log.addHandler(_log_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    pd.set_option("display.max_colwidth", None)    # a table's words in full: the cell wraps them, never "…"


def show(obj) -> None:
    """A bokeh figure or layout in the cell; a sentence stands where it cannot be drawn."""
    script, div, _ = notebook_content(obj)
    note = make_globally_unique_css_safe_id()
    display(HTML(f'<div class="lk-figure"><p class="lk-nofig" id="{note}" style="color:#a33;font-style:italic">'
                 f"{html.escape(NOT_RUN)}</p>{div}</div>"))
    div_id = re.search(r'id="([^"]+)"', div).group(1)
    display({"application/javascript": _WAIT % {"note": note, "div": div_id, "script": script, "msg": NOT_LOADED}},
            raw=True)


def text_html(text: str) -> str:
    """labkit's indented words (a headline line, then '  ' indented lines) as HTML: the headline in bold,
    the rest as a list that wraps at words."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    items = []
    for ln in lines[1:]:
        depth = (len(ln) - len(ln.lstrip(" "))) // 2
        body = html.escape(ln.strip().removeprefix("- "))
        items.append(f'<li style="margin-left:{max(depth - 1, 0) * 1.5}em">{body}</li>')
    return ('<div class="lk-verdict" style="white-space:normal;max-width:100%">'
            f'<p class="lk-headline" style="font-weight:bold;font-size:1.1em;margin:0 0 4px">'
            f"{html.escape(lines[0].strip())}</p>"
            + (f'<ul style="margin:0;padding-left:1.2em">{"".join(items)}</ul>' if items else "") + "</div>")


def show_verdict(v, fix=None) -> None:
    """The verdict (and a fix's trials) in the verdict's own words: headline first, then its evidence."""
    display(HTML(text_html(verdict_text(v, fix))))


def show_text(text: str) -> None:
    """Any of labkit's headline-then-lines texts (a report's lead, a before/after) as formatted text."""
    display(HTML(text_html(text)))


def link(path: os.PathLike | str, text: str | None = None) -> HTML:
    """A file a notebook made, as a link JupyterLab opens (relative to the notebook's folder; JupyterLab
    must be started at the repository: `make jupyter`)."""
    p = Path(path).resolve()
    rel = os.path.relpath(p, Path.cwd())
    return HTML(f'<a class="lk-link" href="{html.escape(rel)}">{html.escape(text or p.name)}</a>'
                f' <span style="color:#777;font-size:12px">({html.escape(rel)})</span>')
