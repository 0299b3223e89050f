"""A user's workflow in the Dagster UI, against ``dagster dev`` with the repo's ``dagster.yaml``.

``dagster dev`` (webserver + daemon) runs on a loopback port with a temporary ``DAGSTER_HOME``
holding a copy of the repo's instance config, and the test-only code location
``fashion_pipeline_tests.ui_location.definitions``. Then:

* ``test_backfill_from_asset_page``: in headless Chromium, open the asset page of
  ``cheap_partitioned``, click "Materialize…", pick "All" partitions, "Launch backfill"; the
  backfill must complete with one successful run per partition, and the runs' asset bodies
  (pool ``gpu``) must never overlap, since the instance config allows one slot per pool.
* ``test_run_retries``: runs launched through GraphQL are retried by the daemon as the instance
  config says: ``flaky_once`` (fails on its first attempt only) once, successfully;
  ``always_fails`` twice (max_retries) when its run opts in to retries of asset failures, and
  not at all without the tag (``retry_on_asset_or_op_failure: false``).
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from fashion_pipeline.common.browser import chrome_driver

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "ui_location"
ASSET = "cheap_partitioned"
PARTITIONS = {"a", "b", "c"}
BACKFILL_TIMEOUT = 180  # the backfill daemon ticks every 30 s: pick-up and completion take a tick each
RETRY_TIMEOUT = 120

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _default_interrupt_signals():
    """Let the child handle SIGINT/SIGTERM even when pytest was started with them ignored.

    A shell without job control starts background commands with SIGINT ignored; `dagster dev`
    then maps SIGTERM onto that ignored handler and never shuts down on killpg(SIGTERM).
    Dispositions set here are inherited by the child, so reset them around Popen only.
    """
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) == signal.SIG_IGN:
            saved[sig] = signal.signal(sig, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _stop_process_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the whole group (webserver, daemon, code servers, run workers), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Stragglers (or a parent that ignored SIGTERM): nothing of the group may outlive the test.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_backfill")
    home, out, cwd = root / "dagster_home", root / "out", root / "cwd"
    for folder in (home, out, cwd):
        folder.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    workspace = root / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: fashion_pipeline_tests.ui_location.definitions\n"
        f"      working_directory: {json.dumps(str(REPO_ROOT))}\n"
        f"      location_name: {LOCATION}\n"
    )
    port = _free_port()
    log_path = root / "dagster_dev.log"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UI_TEST_OUT": str(out),
        "PYTHONUNBUFFERED": "1",
    }
    dagster_bin = Path(sys.executable).with_name("dagster")
    with open(log_path, "wb") as log, _default_interrupt_signals():
        # cwd is neither the repo root nor DAGSTER_HOME: the instance must still be the one in home.
        process = subprocess.Popen(
            [str(dagster_bin), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(chars: int = 6000) -> str:
        text = log_path.read_text(errors="replace")
        return f"\n--- dagster dev log (tail) ---\n{text[-chars:]}"

    def wait_until(predicate, timeout: float, what: str, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {process.returncode} while waiting for {what}{log_tail()}")
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}{log_tail()}")
            time.sleep(interval)

    def server_up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    instance = None
    try:
        wait_until(server_up, 120, "the webserver")
        instance = dg.DagsterInstance.from_config(str(home))
        # The run-retry daemon ignores failures that happened before its first tick, so wait for it
        # (and the backfill and run-queue daemons) to be up.
        needed = {"BACKFILL", "EVENT_LOG_CONSUMER", "QUEUED_RUN_COORDINATOR"}
        wait_until(lambda: needed <= set(instance.get_daemon_heartbeats()), 90, f"daemons {sorted(needed)}")
        yield SimpleNamespace(
            root=root,
            base_url=f"http://127.0.0.1:{port}",
            port=port,
            home=home,
            out=out,
            cwd=cwd,
            instance=instance,
            wait_until=wait_until,
            log_tail=log_tail,
        )
    finally:
        _stop_process_group(process)
        if instance is not None:
            instance.dispose()


def _click_until(driver, xpath: str, done, timeout: float = 90, settle: float = 5):
    """Click the element at ``xpath`` (found afresh each try) until ``done(driver)`` is truthy.

    The asset page renders its header (and the Materialize button) before its data has loaded,
    then re-mounts it, so a button found a moment ago can be stale by the time it is clicked.
    So: find, click if enabled, wait ``settle`` s for the effect, else find and click again.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    transient = (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException)
    deadline = time.monotonic() + timeout
    while True:
        try:
            element = driver.find_element(By.XPATH, xpath)
            if element.is_displayed() and element.is_enabled():
                element.click()
                return WebDriverWait(driver, settle, ignored_exceptions=transient).until(done)
        except (*transient, TimeoutException):
            pass
        if time.monotonic() > deadline:
            raise TimeoutException(f"clicking {xpath} did not have its effect within {timeout}s")
        time.sleep(0.5)


def _launch_backfill_in_ui(base_url: str, failure_screenshot: Path) -> str:
    """Asset page → "Materialize…" → "All" partitions → "Launch backfill"; returns the backfill id."""
    from selenium.webdriver.common.by import By

    dialog = f"//*[@role='dialog'][.//*[contains(., 'Launch runs to materialize {ASSET}')]]"

    def dialog_text(driver) -> str:
        found = driver.find_elements(By.XPATH, dialog)
        return found[0].text if found and found[0].is_displayed() else ""

    driver = chrome_driver(window_size="1400,1000")
    try:
        driver.get(f"{base_url}/assets/{ASSET}")
        # The header button reads "Materialize…" (with an ellipsis) for a partitioned asset; the
        # caret beside it (no text) opens a menu, so match the labelled one.
        _click_until(
            driver, "//button[starts-with(normalize-space(.), 'Materialize')]", dialog_text, timeout=90
        )
        # The dialog opens on "Custom" with no partition picked (and "Launch backfill" disabled).
        _click_until(
            driver,
            f"{dialog}//button[normalize-space(.)='All']",
            lambda d: f"{len(PARTITIONS)} partitions" in dialog_text(d),
            timeout=30,
        )
        # A toast confirms: "Created backfill <id>  View". While the launch is in flight the
        # button is disabled, so a slow answer is not clicked twice.
        toast = _click_until(
            driver,
            f"{dialog}//button[normalize-space(.)='Launch backfill']",
            lambda d: re.search(r"Created backfill\s+([a-z0-9]+)", d.find_element(By.TAG_NAME, "body").text),
            timeout=60,
            settle=20,
        )
        return toast.group(1)
    except Exception:
        driver.save_screenshot(str(failure_screenshot))
        print(f"screenshot of the failing page: {failure_screenshot}")
        raise
    finally:
        driver.quit()


def test_backfill_from_asset_page(dagster_dev):
    from dagster._core.execution.backfill import BulkActionStatus

    backfill_id = _launch_backfill_in_ui(dagster_dev.base_url, dagster_dev.root / "failure.png")
    instance = dagster_dev.instance

    def backfill_done():
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None, f"backfill {backfill_id} is not in the instance"
        return backfill if backfill.status != BulkActionStatus.REQUESTED else None

    backfill = dagster_dev.wait_until(backfill_done, BACKFILL_TIMEOUT, f"backfill {backfill_id} to finish")
    runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
    summary = [(r.tags.get("dagster/partition"), r.status.value) for r in runs]
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, (backfill.status, summary, dagster_dev.log_tail())
    assert len(runs) == len(PARTITIONS), summary
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), summary
    assert {r.tags.get("dagster/partition") for r in runs} == PARTITIONS, summary
    assert instance.get_materialized_partitions(dg.AssetKey(ASSET)) == PARTITIONS

    # pool="gpu" with default_limit 1: the asset bodies ran one after another, never together.
    records = [json.loads((dagster_dev.out / f"cheap_{key}.json").read_text()) for key in sorted(PARTITIONS)]
    assert {r["partition"] for r in records} == PARTITIONS
    assert len({r["pid"] for r in records}) == len(PARTITIONS), records  # one run worker each
    intervals = sorted((r["start"], r["end"], r["partition"]) for r in records)
    for (_, end, first), (start, _, second) in zip(intervals, intervals[1:]):
        assert start >= end, f"partitions {first} and {second} overlapped: {intervals}"

    # Everything went to DAGSTER_HOME, nothing to the working directory of `dagster dev`.
    assert (dagster_dev.home / "history" / "runs.db").is_file()
    assert list(dagster_dev.cwd.iterdir()) == []


def _run_group(instance, root_run_id: str) -> list:
    """The run and its retries, oldest first."""
    retries = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": root_run_id}))
    return [instance.get_run_by_id(root_run_id), *sorted(retries, key=lambda r: int(r.tags["dagster/retry_number"]))]


# dagster_graphql's client passes variable_values the way gql 4 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_run_retries(dagster_dev):
    """Run retries as the repo's dagster.yaml sets them, with the daemon of `dagster dev`.

    max_retries 2 and retry_on_asset_or_op_failure false: an asset that raises is retried only
    when its run opts in with the tag, then at most twice, and a retry re-runs the failed step.
    """
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_dev.port, timeout=60)
    opt_in = {"dagster/retry_on_asset_or_op_failure": "true"}

    def launch(asset: str, tags=None) -> str:
        return client.submit_job_execution(
            "__ASSET_JOB",
            repository_location_name=LOCATION,
            repository_name="__repository__",
            asset_selection=[asset],
            tags=tags,
        )

    flaky_id = launch("flaky_once", opt_in)  # fails once: one retry, which succeeds
    exhausted_id = launch("always_fails", opt_in)  # fails every time: two retries, then it stops
    default_id = launch("always_fails")  # the instance default: an asset failure is not retried
    instance = dagster_dev.instance

    def group_settled(root_run_id: str, size: int):
        group = _run_group(instance, root_run_id)
        last = group[-1]
        # A failed run is tagged dagster/will_retry when its failure is recorded; a success is not.
        decided = last.status == dg.DagsterRunStatus.SUCCESS or "dagster/will_retry" in last.tags
        if len(group) == size and last.is_finished and decided:
            return group
        return None

    def daemon_declined(run_id: str) -> bool:
        return any(
            "Not retrying run since it failed due to an asset or op failure" in (record.message or "")
            for record in instance.all_logs(run_id)
        )

    flaky = dagster_dev.wait_until(lambda: group_settled(flaky_id, 2), RETRY_TIMEOUT, f"the retry of {flaky_id}")
    exhausted = dagster_dev.wait_until(
        lambda: group_settled(exhausted_id, 3), RETRY_TIMEOUT, f"two retries of {exhausted_id}"
    )
    dagster_dev.wait_until(lambda: daemon_declined(default_id), RETRY_TIMEOUT, f"the daemon to decline {default_id}")

    def summary(group):
        return [(r.run_id[:8], r.status.value, r.tags.get("dagster/retry_number"), r.tags.get("dagster/will_retry")) for r in group]

    # flaky_once: the first run failed in the asset, the daemon retried it once, the retry succeeded.
    first, retry = flaky
    assert first.status == dg.DagsterRunStatus.FAILURE, summary(flaky)
    assert first.tags.get("dagster/failure_reason") == "STEP_FAILURE", first.tags
    assert first.tags.get("dagster/auto_retry_run_id") == retry.run_id, first.tags
    assert (dagster_dev.out / "flaky_once.attempted").exists()
    assert retry.status == dg.DagsterRunStatus.SUCCESS, (summary(flaky), dagster_dev.log_tail())
    assert retry.tags.get("dagster/parent_run_id") == flaky_id, retry.tags
    assert retry.tags.get("dagster/retry_number") == "1", retry.tags
    assert retry.asset_selection == {dg.AssetKey("flaky_once")}
    assert instance.get_latest_materialization_event(dg.AssetKey("flaky_once")).run_id == retry.run_id

    # always_fails, opted in: the original and max_retries=2 retries, all failed, and no third retry.
    assert [r.status for r in exhausted] == [dg.DagsterRunStatus.FAILURE] * 3, summary(exhausted)
    assert [r.tags.get("dagster/will_retry") for r in exhausted] == ["true", "true", "false"], summary(exhausted)
    assert [r.parent_run_id for r in exhausted] == [None, exhausted[0].run_id, exhausted[1].run_id]

    # always_fails with the instance default: failed, not retried.
    default = instance.get_run_by_id(default_id)
    assert default.status == dg.DagsterRunStatus.FAILURE
    assert default.tags.get("dagster/will_retry") == "false", default.tags
    assert _run_group(instance, default_id) == [default]
