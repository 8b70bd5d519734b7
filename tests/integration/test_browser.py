"""JupyterLab in a real browser, offline: every notebook as a person sees it; notebook 03's panel live; the report.

Debian's chromium, driven headless by Playwright (no browser download), against a JupyterLab server on
127.0.0.1; every request to anywhere else is refused. The notebooks are the ones nbval executed in this
session (tests/executed.py records them: no second execution); run alone, this test executes a missing one
once with nbclient. Screenshots go to data/screenshots (not committed).
"""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from labkit.lab.lab import ownership as state
from tests import executed

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "03-tuning.ipynb"
SHOTS = Path(__file__).parents[2] / "data" / "screenshots"
WIDTH = 1400                                   # the window a person reads the notebooks in
ALL = sorted(p.name for p in executed.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
VERDICT = {"01-hop-by-hop.ipynb", "02-tcp-windows.ipynb", "04-seed-case.ipynb", "07-oci-registry.ipynb"}   # show a verdict's headline
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _jupyterlab(root: Path):
    """A JupyterLab server on 127.0.0.1 serving `root` (cells unvirtualized: every output is laid out, so every
    figure paints and is measured); yields its base URL and token."""
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    settings = root / ".lab-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(root / ".jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / '.ws'}",
                             "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (root / ".jupyter.log").read_text()[-2000:])
                time.sleep(0.2)
        yield url, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)      # the server shuts its kernels down: their labs end (atexit)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _offline(context) -> list[str]:
    """Refuse every request that leaves 127.0.0.1; the list of those refused."""
    refused = []

    def route(r):
        host = urllib.parse.urlsplit(r.request.url).hostname
        if host in ("127.0.0.1", None):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    return refused


@pytest.fixture()
def jupyterlab(tmp_path):
    lab_name = os.environ.get("SERVELAB_NB03_LAB", "nb03")     # a helper's own lab name, so labs never meet
    nb = json.loads(NOTEBOOK.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    first["source"] = [ln.replace('"nb03"', json.dumps(lab_name)) for ln in first["source"]]
    (tmp_path / NOTEBOOK.name).write_text(json.dumps(nb))
    try:
        with _jupyterlab(tmp_path) as (url, token):
            yield f"{url}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        state.end(lab_name)                  # and if a kernel died hard, its lab ends here


@pytest.fixture(scope="module")
def executed_lab(tmp_path_factory):
    """JupyterLab at a folder laid out as the repository (notebooks/ and data/), the notebooks as executed."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    (root / "data").symlink_to(executed.ROOT / "data")   # the files a notebook links to (reports, bundles, CSV)
    with _jupyterlab(root) as server:
        yield root, server


# what the page holds after a notebook is laid out: every output measured against the notebook's width
_MEASURE = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const deep = (el, sel) => {            // bokeh draws inside shadow roots: look through them
    const found = [...el.querySelectorAll(sel)];
    for (const e of el.querySelectorAll('*')) if (e.shadowRoot) found.push(...deep(e.shadowRoot, sel));
    return found;
  };
  const right = nb.getBoundingClientRect().right;
  const out = {errors: [], stderr: [], widget_errors: [], wide: [], figures: [], unpainted: [], nofig: [],
               headlines: [], links: []};
  nb.querySelectorAll('.jp-CodeCell').forEach((cell, i) => {
    const text = el => el.innerText.slice(0, 300);
    cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]').forEach(e => out.errors.push([i, text(e)]));
    cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').forEach(e => out.stderr.push([i, text(e)]));
    cell.querySelectorAll('.jp-OutputArea-output').forEach(o => {
      if (o.innerText.includes('Error displaying widget')) out.widget_errors.push([i, text(o)]);
      const edge = o.getBoundingClientRect().right;
      for (const e of [o, ...o.querySelectorAll('*')]) {
        const r = e.getBoundingClientRect();
        if (r.width && (r.right > edge + 1 || r.right > right + 1 || e.scrollWidth > e.clientWidth + 1 &&
            ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))) {
          out.wide.push([i, e.tagName + '.' + e.className, Math.round(r.right), Math.round(edge), text(e).slice(0, 80)]);
          break;
        }
      }
    });
    cell.querySelectorAll('.lk-figure').forEach(f => {
      const canvases = deep(f, 'canvas');
      out.figures.push(i);
      // painted: some canvas holds more than the background (lines, bars, words)
      const painted = canvases.some(c => {
        const g = c.getContext('2d'); if (!g || !c.width || !c.height) return false;
        const d = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let k = 0; k < d.length && seen.size < 4; k += 4 * 97) seen.add(d[k] << 16 | d[k + 1] << 8 | d[k + 2]);
        return seen.size >= 3;
      });
      if (!painted) out.unpainted.push([i, canvases.length]);
    });
    cell.querySelectorAll('.lk-nofig').forEach(e => out.nofig.push([i, text(e)]));
    cell.querySelectorAll('.lk-headline').forEach(e => out.headlines.push([i, text(e)]));
    cell.querySelectorAll('a.lk-link').forEach(a => out.links.push(a.getAttribute('href')));
  });
  return out;
}"""


def _figure_cells(nb: dict) -> list[int]:
    """The code cells (their order among code cells) whose executed outputs hold a figure."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return [i for i, c in enumerate(code)
            if any('class="lk-figure"' in "".join(o.get("data", {}).get("text/html", "")) for o in c.get("outputs", []))]


@pytest.mark.after_notebooks
@pytest.mark.parametrize("name", ALL)
def test_every_notebook_as_a_person_sees_it_offline(executed_lab, name):
    """The notebook nbval ran (or, alone, one nbclient run), opened in JupyterLab offline at 1400 px: no error or
    stderr, no widget error, every figure painted, nothing wider than the notebook, a verdict's headline."""
    from playwright.sync_api import expect, sync_playwright
    root, (url, token) = executed_lab
    nb_path = executed.EXECUTED / name
    if not nb_path.exists():
        nb_path = executed.execute(name)
    shutil.copy(nb_path, root / "notebooks" / name)
    nb = json.loads(nb_path.read_text())
    expected_figures = _figure_cells(nb)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{name.removesuffix('.ipynb')}.png"
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
        refused = _offline(context)
        page = context.new_page()
        page.goto(f"{url}/lab/tree/notebooks/{name}?reset&token={token}")
        panel = ".jp-NotebookPanel:not(.lm-mod-hidden)"
        expect(page.locator(f"{panel} .jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
        if page.get_by_role("button", name="No", exact=True).count():
            page.get_by_role("button", name="No", exact=True).click()          # the "Jupyter news?" toast
        if expected_figures:
            page.wait_for_function("() => document.querySelectorAll('.lk-nofig').length === 0", timeout=30_000)
        # the whole notebook in one tall window (every output laid out and painted, one screenshot of it all):
        # grown until the notebook's height holds still (figures and tables take their size as they draw)
        height = 0
        for _ in range(5):
            page.wait_for_timeout(1000)
            now = page.evaluate(f"() => {{ const cells = document.querySelectorAll('{panel} .jp-Cell');"
                                " return Math.ceil(cells[cells.length - 1].getBoundingClientRect().bottom) + 60; }")
            if now == height:
                break
            height = now
            page.set_viewport_size({"width": WIDTH, "height": min(max(height, 1000), 30000)})
        seen = page.evaluate(_MEASURE)
        shown = "\n".join(page.locator(f"{panel} .jp-OutputArea-output").all_inner_texts())
        tables = "\n".join(page.locator(f"{panel} .jp-OutputArea-output table").all_inner_texts())
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    problems = {k: seen[k] for k in ("errors", "stderr", "widget_errors", "wide", "unpainted", "nofig") if seen[k]}
    assert not problems, f"{name} (screenshot {shot}; refused off-machine requests: {refused}): {problems}"
    assert sorted(set(seen["figures"])) == expected_figures, (name, seen["figures"], expected_figures)
    assert not re.search(r"\bNaN\b|<NA>|\bNaT\b", shown), f"{name}: NaN, <NA> or NaT shown where words should say what is missing ({shot})"
    long = re.findall(r"(?<![\w.])\d+\.\d{4,}\b", tables)         # lk.readable: the digits the spread supports
    assert not long, f"{name}: numbers in tables with more digits than their spread supports: {long[:5]} ({shot})"
    if name in VERDICT:
        assert seen["headlines"] and seen["headlines"][0][1].strip(), f"{name}: no verdict headline"
    for href in seen["links"]:     # a file the notebook made: JupyterLab resolved it inside its own tree
        path = urllib.parse.urlsplit(href).path
        assert path.startswith("/files/"), f"{name}: {href} is not a file JupyterLab serves"
        target = root / urllib.parse.unquote(path.removeprefix("/files/"))
        assert target.exists(), f"{name}: the link {href} leads nowhere"


def test_notebook_03_panel_renders_and_apply_and_measure_grows_the_table(jupyterlab):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
        _offline(context)
        page = context.new_page()
        page.goto(jupyterlab)
        first = page.locator(".jp-Notebook .jp-Cell").first
        expect(first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)  # kernel ready
        no_news = page.get_by_role("button", name="No", exact=True)
        if no_news.count():
            no_news.click()                                          # the "Jupyter news?" toast
        first.click()
        page.keyboard.press("Escape")
        # markdown, parameters, imports + lab up, the panel, markdown, the first trial
        for _ in range(6):
            page.keyboard.press("Shift+Enter")
        button = page.get_by_role("button", name="apply and measure")
        try:
            expect(button).to_be_visible(timeout=120_000)
        finally:                                              # the screenshot also tells why it failed
            page.screenshot(path=str(SHOTS / "03-tuning-panel.png"), full_page=True)
        rows = page.locator(".jp-OutputArea .widget-output table.dataframe tbody tr")
        expect(rows).to_have_count(1, timeout=120_000)        # the first trial, run from code
        page.screenshot(path=str(SHOTS / "03-tuning-panel.png"), full_page=True)
        button.click()
        expect(rows).to_have_count(2, timeout=120_000)        # the click added a trial
        expect(page.locator(".jp-OutputArea .widget-output canvas").first).to_be_visible()   # the bokeh chart
        button.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "03-tuning-after-click.png"), full_page=True)
        browser.close()


def test_the_report_opens_with_the_path_and_the_headline_and_no_table_overflows(tmp_path):
    """A report from a recorded survey (no lab): in Chromium, the path is drawn first with the binding stage
    marked, then the verdict's headline; every table fits its box or scrolls inside it, at two page widths."""
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import expect, sync_playwright

    from labkit.analyze.verdict import verdict
    from labkit.analyze.words import headline
    from labkit.measure.survey import Survey
    from labkit.experiments.reports import survey_report
    s = Survey.load(Path(__file__).parents[1] / "fixtures" / "surveys" / "full-machine-2018-10.csv")
    report = survey_report(s, tmp_path / "report.html")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for width in (1280, 800):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(report.as_uri())
            expect(page.locator("#headline")).to_have_text(headline(verdict(s)))
            expect(page.locator(".path canvas").first).to_be_visible()          # bokeh drew the path
            order = page.evaluate("""() => {
                const path = document.querySelector('.path'), head = document.querySelector('#headline');
                return path.getBoundingClientRect().top < head.getBoundingClientRect().top; }""")
            assert order, "the path must come before the headline"
            boxes = page.evaluate("""() => [...document.querySelectorAll('table')].map(t => {
                const box = t.parentElement, right = document.body.getBoundingClientRect().right;
                return {wrap: box.className, boxRight: box.getBoundingClientRect().right, pageRight: right,
                        fits: box.scrollWidth <= box.clientWidth + 1, scrolls: getComputedStyle(box).overflowX}; })""")
            assert len(boxes) >= 2
            for b in boxes:
                assert b["wrap"] == "table-wrap" and b["boxRight"] <= b["pageRight"] + 1, b
                assert b["fits"] or b["scrolls"] in ("auto", "scroll"), b
            if width == 1280:
                assert all(b["fits"] for b in boxes), boxes                # at a desktop width nothing needs scrolling
            page.screenshot(path=str(SHOTS / f"report-{width}px.png"), full_page=True)
            page.close()
        browser.close()


@pytest.mark.after_notebooks
def test_a_figure_that_cannot_draw_says_so_in_words(executed_lab):
    """The same executed notebook, not trusted (changed after it was signed): its scripts do not run, and where
    each figure would be the cell says why in words."""
    from playwright.sync_api import expect, sync_playwright

    from labkit.present.notebook import NOT_RUN
    root, (url, token) = executed_lab
    name = "00-start-here.ipynb"
    nb_path = executed.EXECUTED / name if (executed.EXECUTED / name).exists() else executed.execute(name)
    nb = json.loads(nb_path.read_text())
    nb["metadata"]["untrusted_copy"] = True          # its signature no longer matches: JupyterLab distrusts it
    (root / "notebooks" / "untrusted.ipynb").write_text(json.dumps(nb))
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
        _offline(context)
        page = context.new_page()
        page.goto(f"{url}/lab/tree/notebooks/untrusted.ipynb?reset&token={token}")
        note = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .lk-nofig").first
        note.scroll_into_view_if_needed(timeout=60_000)
        expect(note).to_have_text(NOT_RUN, timeout=30_000)
        page.wait_for_timeout(6000)                  # longer than a script would wait for BokehJS
        expect(note).to_have_text(NOT_RUN)
        browser.close()
