"""``make dev`` stops within 10 s on Ctrl-C or SIGTERM, with a browser on the UI and a scrape running.

The supervisor (``python -m fashion_pipeline.devserver``, what ``make dev`` runs) starts ``dg dev`` on a
temporary instance; headless Chromium keeps the asset graph open; one brand's scrape is launched through
the webserver's GraphQL API, as a click would. Then the supervisor gets the signal, and within 10 s it must
have exited with nothing of its process group left: no webserver, daemon, code server, run worker or Chromium.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fashion_pipeline import devserver
from fashion_pipeline.common.browser import chrome_driver

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what, probe, process, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make dev's supervisor exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        found = probe()
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"no {what} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_dev_stops_within_10_s_with_a_run_and_a_browser(tmp_path, signum):
    from dagster_graphql import DagsterGraphQLClient

    home, log, port = tmp_path / "home", tmp_path / "dev.log", _free_port()
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "FASHION_PIPELINE_DATA": str(tmp_path / "data"),
           "FASHION_PIPELINE_SETTINGS": "demo", "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    supervisor = subprocess.Popen([sys.executable, "-m", "fashion_pipeline.devserver", "-p", str(port), "-h", "127.0.0.1"],
                                  cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    driver, group = None, None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait("the webserver", lambda: _answers(f"{base}/server_info"), supervisor, log, timeout=180)
        group = next(int(m.split()[0]) for m in _dg_groups(supervisor.pid))
        driver = chrome_driver()
        driver.get(f"{base}/assets")  # an open page: GraphQL polling and a websocket to the webserver
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution("demo_brand", tags={"dagster/partition": "hermes"})
        _wait("the run to start", lambda: client.get_run_status(run_id).value in ("STARTED", "SUCCESS", "FAILURE"),
              supervisor, log, timeout=120)
        time.sleep(3)  # into the scrape: Chromium, the embedded site and the downloads are up in the run's step
        assert devserver.group_members(group), "dg dev's process group should be running"

        started = time.monotonic()
        supervisor.send_signal(signum)
        supervisor.wait(timeout=DEADLINE_S + 5)
        while devserver.group_members(group) and time.monotonic() - started < DEADLINE_S + 5:
            time.sleep(0.1)
        took = time.monotonic() - started
        assert not devserver.group_members(group), devserver.group_members(group)
        assert took < DEADLINE_S, f"stopped after {took:.1f}s:\n{log.read_text()[-2000:]}"
        assert supervisor.returncode == 0
        assert "[dev] stopped in" in log.read_text()
    finally:
        if driver is not None:
            driver.quit()
        if supervisor.poll() is None:
            supervisor.kill()
        if group is not None and devserver.group_members(group):
            os.killpg(group, signal.SIGKILL)


def _dg_groups(supervisor_pid: int) -> list[str]:
    """The supervisor's child (dg dev) leads its own process group: "pgid name"."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            if int(rest[1]) == supervisor_pid:  # ppid
                return [f"{rest[2]} {entry.name}"]
    raise AssertionError("the supervisor started no child")


def test_stop_group_escalates_on_a_process_that_ignores_sigint_and_sigterm():
    # A stand-in for a stuck step: ignores SIGINT and SIGTERM, so only the SIGKILL at the deadline stops it.
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    time.sleep(1.0)  # the handlers are installed
    started = time.monotonic()
    assert devserver.stop_group(child, grace_s=0.5, kill_after_s=1.0) == "SIGKILL"
    assert time.monotonic() - started < 3.0 and not devserver.group_members(child.pid)


def test_stop_group_needs_only_sigint_for_a_process_that_honours_it():
    # Python's own SIGINT handler, installed even where the shell started the tests with SIGINT ignored (a
    # background job without job control), which the child would inherit
    code = "import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    time.sleep(1.0)  # the handler is installed
    assert devserver.stop_group(child, grace_s=5.0, kill_after_s=6.0) == "SIGINT"
    assert not devserver.group_members(child.pid)
