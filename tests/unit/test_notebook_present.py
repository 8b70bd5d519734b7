"""What a notebook shows: figures with a sentence where they cannot draw, words headline first, messages by
weight, progress as HTML, figures labelled in words, and nbval's messages rebuilt into a notebook's outputs."""
import logging

import pandas as pd
from bokeh.plotting import figure

from labkit.present import notebook, plots
from labkit.progress import HtmlBar
from tests.executed import WIDGET_STATE, Recorder, NOTEBOOKS


def test_words_render_headline_first_as_a_list_that_wraps():
    out = notebook.text_html("nginx binds; try X.\n  the summary\n  - evidence <a>\n    deeper")
    assert out.index('class="lk-headline"') < out.index("<li")
    assert "nginx binds; try X." in out and "evidence &lt;a&gt;" in out and "white-space:normal" in out
    assert out.count("<li") == 3 and "margin-left:1.5em" in out


def test_a_figure_says_in_words_where_it_cannot_draw(monkeypatch):
    shown = []
    monkeypatch.setattr(notebook, "display", lambda *a, **kw: shown.append(a[0]))
    notebook.show(figure(title="t"))
    html, js = shown[0].data, shown[1]["application/javascript"]
    assert 'class="lk-figure"' in html and notebook.NOT_RUN.split("(")[0].strip() in html
    assert "root.Bokeh !== undefined" in js and notebook.NOT_LOADED in js and "embed_document" in js


def test_routine_messages_are_one_status_line_and_warnings_a_note(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj.data))
    monkeypatch.setattr(notebook, "display", lambda obj, **kw: shown.append(("new", obj.data)) or Handle())
    h = notebook.NotebookLog()
    log = logging.getLogger("labkit.test-notebook")
    log.addHandler(h)
    log.propagate = False
    log.setLevel(logging.INFO)         # its own level: a CLI test before it may have set labkit's to WARNING
    try:
        log.info("lab 'x' is up")
        log.info("deleted namespace y")
        log.warning("stage 'uwsgi' carries no image: not pulled")
    finally:
        log.removeHandler(h)
    assert [k for k, _ in shown] == ["new", "update", "new"]
    assert "deleted namespace y (2 messages)" in shown[1][1] and 'class="lk-status"' in shown[1][1]
    assert 'class="lk-note"' in shown[2][1] and "not pulled" in shown[2][1]


def test_progress_in_a_notebook_is_html_that_ends_with_how_long_it_took(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj.data) or Handle())
    with HtmlBar(total=3, desc="survey", unit="step", leave=False) as bar:
        bar.update(3)
    assert "<progress" in shown[0] and "survey: 0/3" in shown[0]
    assert "survey: 3 steps in" in shown[-1] and "<progress" not in shown[-1]


def test_figures_say_what_they_compare_in_words():
    t = pd.DataFrame({"kind": ["iperf3", "pull", "pull"], "point": ["a→b", "node", "node"], "parallel": [1, 1, 5],
                      "MBps": [900.0, 300.0, 500.0], "failures": [0, 0, 0]})
    p = plots.survey_bars(t)
    assert [i.label["value"] for i in p.legend[0].items] == ["iperf3: the hop's TCP rate", "one pull",
                                                              "pulls at once (all together)"]
    assert p.legend[0] in p.right and "MB/s" in p.xaxis[0].axis_label
    trials = pd.DataFrame({"preset": ["a", "a"], "parallel": [5, 1], "parallel_MBps": [1.0, 2.0]})
    b = plots.preset_bars(trials)
    assert b.yaxis[0].axis_label == "MB/s, all pulls together"
    assert [i.label["value"] for i in b.legend[0].items] == ["1 pull at once", "5 pulls at once"]


def test_nbvals_messages_become_the_outputs_a_frontend_keeps():
    rec = Recorder(NOTEBOOKS / "00-start-here.ipynb")
    code = next(i for i, c in enumerate(rec.nb.cells) if c.cell_type == "code")

    def msg(kind, **content):
        return {"msg_type": kind, "content": content, "header": {"msg_type": kind}, "parent_header": {},
                "metadata": {}}
    rec.cell_messages(code, [
        msg("display_data", data={"text/html": "<progress>0/3"}, metadata={}, transient={"display_id": "p"}),
        msg("stream", name="stdout", text="a "), msg("stream", name="stdout", text="b\n"),
        msg("update_display_data", data={"text/html": "survey: 3 steps"}, metadata={}, transient={"display_id": "p"}),
        msg("comm_open", comm_id="w1", target_name="jupyter.widget",
            data={"state": {"_model_name": "ButtonModel", "_model_module": "@jupyter-widgets/controls",
                            "_model_module_version": "2.0.0", "description": "go"}}),
        msg("comm_msg", comm_id="w1", data={"method": "update", "state": {"description": "apply"}}),
        msg("comm_open", comm_id="w2", target_name="jupyter.widget", data={"state": {"_model_name": "FloatProgressModel"}}),
        msg("comm_close", comm_id="w2"),
    ])
    outs = rec.nb.cells[code].outputs
    assert [o.output_type for o in outs] == ["display_data", "stream"]
    assert outs[0].data["text/html"] == "survey: 3 steps" and outs[1].text == "a b\n"
    state = rec.notebook().metadata.widgets[WIDGET_STATE]["state"]
    assert list(state) == ["w1", "w2"] and state["w1"]["state"]["description"] == "apply"   # closed: as it was


def test_the_cli_table_is_brief_within_100_columns_and_rounded_to_its_spread():
    from pathlib import Path

    import pandas as pd

    from labkit.present.terminal import brief, wide
    t = pd.read_csv(Path(__file__).parents[1] / "fixtures" / "surveys" / "full-machine-2018-10.csv")
    t["error"] = t.error.astype(object)
    t.loc[6, ["error", "failures"]] = ["ConnectionResetError: [Errno 104] Connection reset by peer after 12 MB " * 3, 1]
    text = brief(t)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[0].split() == ["kind", "point", "x", "MB/s", "range", "fail", "busiest", "error"]
    assert " 1000  550-1000 " in text and "nginx 95%" in text and "cpu_s_per_GB" not in text
    assert "cpu_s_per_GB_nginx" in wide(t) and "ttfb_ms" in wide(t)


def test_numbers_keep_the_digits_their_spread_supports_and_words_stand_for_nan():
    import math

    from labkit.present.numbers import or_words, rounded
    assert rounded(1001.5, 551.9, 1023.1) == 1000 and rounded(94.2, 93.1, 95.0) == 94
    assert rounded(0.552402) == 0.55 and rounded(1.23456) == 1.2 and rounded(0.0468) == 0.047
    assert or_words(math.nan, "no prediction") == "no prediction" and or_words(3, "x") == 3


def test_cli_verbosity_hides_routine_lab_messages_unless_asked():
    import logging

    from labkit import verbosity
    assert verbosity(0) == logging.WARNING and verbosity(1) == logging.INFO and verbosity(2) == logging.DEBUG


def test_many_events_are_ticks_along_the_bottom_and_a_few_hollow_markers_on_their_line():
    import numpy as np
    import pandas as pd
    from bokeh.plotting import figure

    from labkit.present.plots import ON_THE_LINE, event_marks
    t = np.linspace(0, 1, 200)
    y = t * 64
    ev = pd.DataFrame({"t": list(np.linspace(0, 1, 683)) + [0.5, 0.6], "kind": ["zero window"] * 683 + ["reset"] * 2})
    p = figure()
    assert len(event_marks(p, ev, t, y)) == 2
    assert 683 > ON_THE_LINE
    marks = {r.glyph.marker: r for r in p.renderers}
    assert set(marks) == {"dash", "asterisk"}
    assert set(marks["dash"].data_source.data["y"]) == {0.0}                  # the strip, off the line
    assert list(marks["asterisk"].data_source.data["y"]) == [32.0, 38.4]       # on the line at their time
    assert marks["asterisk"].glyph.fill_alpha == 0                           # hollow: the line shows through
