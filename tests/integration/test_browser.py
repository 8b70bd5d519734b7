"""JupyterLab in a real browser: notebook 03's panel renders, "apply and measure" grows the table.

Debian's chromium, driven headless by Playwright (no browser download), against a JupyterLab
server on 127.0.0.1 serving a copy of notebook 03 (so autosave never touches the repo).
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labkit.lab.lab import ownership as state

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "03-tuning.ipynb"
SHOTS = Path(__file__).parents[2] / "data" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
                             "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-2000:])
            time.sleep(0.2)
    yield f"{url}/lab/tree/{NOTEBOOK.name}?token={token}"
    os.killpg(proc.pid, signal.SIGTERM)      # the server shuts its kernels down: their labs end (atexit)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    state.end("nb03")                         # and if a kernel died hard, its lab ends here


def test_notebook_03_panel_renders_and_apply_and_measure_grows_the_table(jupyterlab):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
    from labkit.workflows import survey_report
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
