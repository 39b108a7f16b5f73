"""The dashboard in a real browser: served by voila, opened in headless Chromium.

A small app notebook (a scheduler with local workers, a mixed workload, a Dashboard)
is served by voila on 127.0.0.1; Playwright drives /usr/bin/chromium (Playwright's own
browser download does not work on these machines). The test waits for the widgets,
clicks Submit, checks the tasks table changed, and saves ``docs/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("voila")
sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AGSCHED_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

APP_CELLS = [
    """
import tempfile

import anyio

from agentic_sched import Scheduler, TaskSpec
from agentic_sched import Dashboard, run_in_background

state = tempfile.mkdtemp(prefix="agsched-voila-")
bg = await run_in_background(Scheduler(state_dir=state, planner="eft", plan_budget_s=0.3, heartbeat_s=0.3))
s = bg.scheduler
for i, cpu in enumerate([2, 2, 4], start=1):
    await s.add_worker(id=f"w{i}", capacity={"cpu": cpu}, labels={"rack": "a" if i < 3 else "b"}, max_concurrency=3)
with anyio.fail_after(60):
    while any(w.state != "up" for w in s.workers()):
        await anyio.sleep(0.1)
quick = await s.submit_many([TaskSpec(id=f"quick-{i}", argv=["sleep", f"{0.2 + 0.1 * (i % 3):.1f}"],
                                      duration=0.3, demand={"cpu": 1}) for i in range(8)])
await s.submit(TaskSpec(id="broken", argv=["/bin/sh", "-c", "exit 3"], duration=0.1))
await s.wait(quick, timeout=60)
await s.submit_many([TaskSpec(id=f"long-{i}", argv=["sleep", "120"], duration=20 + 5 * i,
                              demand={"cpu": 1 + i % 2}, deadline=35) for i in range(6)])
await s.submit(TaskSpec(id="too-big", argv=["true"], demand={"cpu": 64}))
with anyio.fail_after(60):
    while not s.list("running") or not s.why_pending("too-big").startswith("unschedulable"):
        await anyio.sleep(0.1)
dash = Dashboard(s, title="agentic-sched dashboard", max_rows=12)
dash.task_pick.value = "too-big"
dash.f_id.value, dash.f_cmd.value, dash.f_count.value = "from-browser", "sleep 1", 2
dash.wi_worker.value, dash.wi_action.value, dash.wi_ntasks.value, dash.wi_tdl.value = "w3", "remove", 4, 20
dash
""",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def voila_app(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c.strip()) for c in APP_CELLS]
    nbformat.write(nb, tmp_path / "app.ipynb")
    port = _free_port()
    log = open(tmp_path / "voila.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--Voila.port_retries=0", "--show_tracebacks=True", "app.ipynb"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("voila did not start:\n" + (tmp_path / "voila.log").read_text()) from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _task_total(page) -> int:
    return int(page.get_attribute(".agsched-task-count", "data-total"))


@pytest.mark.timeout(300)
def test_dashboard_in_headless_chromium(voila_app, tmp_path) -> None:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}"
    with sync_api.sync_playwright() as pw:
        # a fresh profile dir per run (Playwright passes it as --user-data-dir)
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.goto(voila_app, timeout=120_000)
            # the app runs its cells (workers start, tasks run) before the widgets render
            page.wait_for_selector(".agsched-dashboard", timeout=180_000)
            page.wait_for_selector("#agsched-workers", timeout=60_000)
            page.wait_for_selector("#agsched-tasks", timeout=60_000)
            page.wait_for_function("document.querySelector('.agsched-dashboard img')?.naturalWidth > 0",
                                   timeout=60_000)
            before = _task_total(page)
            assert page.locator("#agsched-workers").inner_text().count("up") >= 3
            page.click(".agsched-submit")
            page.wait_for_function(
                f"Number(document.querySelector('.agsched-task-count')?.dataset.total) >= {before + 2}",
                timeout=60_000)
            page.wait_for_selector("text=from-browser-1", timeout=60_000)
            assert "submitted from-browser-0" in page.locator("#agsched-message").inner_text()
            assert _task_total(page) == before + 2
            assert "insufficient cpu" in page.locator("#agsched-why").inner_text()
            # what-if: a preview next to the current one, nothing committed
            page.click(".agsched-whatif")
            page.wait_for_selector("#agsched-whatif-table", timeout=60_000)
            assert "what-if-" not in page.locator("#agsched-tasks").inner_text()
            page.wait_for_timeout(1500)  # let the next Gantt redraw (≤ 1/s) land for the picture
            # voila scrolls inside its own container: grow the viewport to the whole dashboard
            top = "() => { for (const e of document.querySelectorAll('*')) { if (e.scrollTop) e.scrollTop = 0; }" \
                  " window.scrollTo(0, 0); return Math.ceil(document.querySelector('.agsched-dashboard')" \
                  ".getBoundingClientRect().bottom); }"
            page.set_viewport_size({"width": 1400, "height": 4000})
            bottom = page.evaluate(top)
            page.set_viewport_size({"width": 1400, "height": min(int(bottom) + 30, 6000)})
            page.evaluate(top)
            page.wait_for_timeout(1000)
            out = ROOT / "docs" / "dashboard.png"
            out.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            assert out.stat().st_size > 20_000
        finally:
            browser.close()
