"""JupyterLab in a real browser: the inference chapter runs at the smoke profile and its explorer
answers an uploaded image. The server runs on 127.0.0.1 with a token, on a free port, and is
stopped whatever happens, kernels included (the test fails if a process is left behind).

Screenshots: the ``browser_page`` folder (``$ANIMESION_SCREENSHOTS`` or a pytest temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOK = "08_inference.ipynb"
# what a fresh JupyterLab user profile would otherwise change: the notebook's kernel starts without
# a "Select Kernel" dialog, cells stay in the page (no windowing, so the test finds the widget),
# and no news toast covers the notebook
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                   "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebook(folder: Path, work: Path) -> None:
    """The inference chapter with papermill's parameters injected: smoke data, its own runs and records."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from animesion_book.runner import ensure_synthetic

    data = REPO / "data" / "synthetic-smoke"
    ensure_synthetic(data, "smoke")  # the notebooks' defaults read it (generated once, never committed)
    nb = load_notebook_node(str(REPO / "notebooks" / NOTEBOOK))
    for cell in nb.cells:  # open it as a reader would: without the stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb = parameterize_notebook(nb, {"data_root": str(data), "runs_dir": str(work / "runs"),
                                    "results_dir": str(work / "results"), "epochs": 1})
    nbformat.write(nb, folder / NOTEBOOK)


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(process: subprocess.Popen, kernels: list[int]) -> list[int]:
    """SIGTERM the server's process group and its kernels (own sessions), then SIGKILL what is left."""
    import psutil

    pids = [process.pid, *kernels]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.killpg(pid, sig) if pid == process.pid else os.kill(pid, sig)
            except ProcessLookupError:
                pass
        _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
        if not alive:
            break
    process.wait(timeout=5)
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab serving the prepared notebook; yields its address, token, folder and environment."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (it is in the book extra: make setup)")
    from animesion_lib.cli.lab import lab_command, lab_environment

    folder, work = tmp_path / "notebooks", tmp_path / "work"
    folder.mkdir()
    _prepare_notebook(folder, work)
    settings = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / Path(name).parent).mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = lab_environment() | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "OMP_NUM_THREADS": "1"}
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "lab.log", "w")
    process = subprocess.Popen(lab_command(folder, port, token, open_browser=False, port_retries=0),
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield {"url": url, "token": token, "folder": folder, "env": env}
    finally:
        left = _stop(process, _descendants(process.pid))  # the kernels run in sessions of their own
        log.close()
        assert not left, f"processes left behind: {left}"


@pytest.mark.slow
def test_a_second_lab_says_where_the_first_one_is(lab):
    result = subprocess.run([sys.executable, "-m", "animesion_lib.cli.lab", "--notebooks", str(lab["folder"]),
                             "--no-browser"], env=lab["env"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{lab['url']}/lab?token={lab['token']}" in result.stdout
    assert "already running" in result.stdout


@pytest.mark.slow
@pytest.mark.browser
def test_jupyterlab_runs_the_inference_chapter_and_its_explorer_answers_an_upload(lab, browser_page, tmp_path):
    from PIL import Image

    from animesion_lib.data import read_split

    page, shots = browser_page, browser_page.screenshot_dir
    page.set_default_timeout(60_000)
    page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for()  # kernel started: Run All is heard
    page.screenshot(path=str(shots / "1-opened.png"))

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    upload = page.locator("button.widget-upload")
    upload.wait_for(timeout=240_000)  # the whole chapter ran: the explorer is its last cell
    explorer = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-upload"))
    explorer.scroll_into_view_if_needed()
    page.locator("table.animesion-prediction").first.wait_for()
    page.screenshot(path=str(shots / "2-explorer-test-image.png"))

    sample = read_split(REPO / "data" / "synthetic-smoke", "dafre_faces", "test")[0]
    picture = tmp_path / "my_picture.png"
    Image.open(sample.path).convert("RGB").save(picture)
    with page.expect_file_chooser() as chooser:  # as a reader does: click the button, pick the file
        upload.click()
    chooser.value.set_files(str(picture))
    heading = explorer.locator("h4", has_text="my_picture.png")
    heading.wait_for(timeout=60_000)
    table = explorer.locator("table.animesion-prediction")
    rows = table.locator("tbody tr")
    assert rows.count() == 3  # the chapter's top_k
    probabilities = [float(rows.nth(i).locator("td").last.inner_text()) for i in range(3)]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.001
    assert "answered in" in explorer.inner_text()
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "3-explorer-upload.png"))
    errors = [cell for cell in page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
              .all_inner_texts() if "Traceback" in cell]
    assert not errors, errors[0][-2000:]
    assert not page.blocked_requests, f"JupyterLab tried to reach the network: {page.blocked_requests[:5]}"
    assert not page.console_errors, page.console_errors[:5]

