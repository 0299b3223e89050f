"""The real daemon (``dagster-daemon run``) runs automation with nobody switching it on or calling the evaluator.

A temporary instance, the project's workspace and instance config; the automation sensor is RUNNING by
default, so once it has ticked, a new scrape of one brand (the demo job, in this process) leads the daemon
to launch and finish a ``pinterest_dataset`` run by itself.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from fashion_pipeline.definitions import AUTOMATION_INTERVAL_ENV_VAR, AUTOMATION_SENSOR_NAME, defs

REPO = Path(__file__).resolve().parents[1]


def _wait_for(what: str, probe, daemon: subprocess.Popen, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise AssertionError(f"dagster-daemon exited ({daemon.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        found = probe()
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"no {what} within {timeout:.0f}s; daemon log:\n{log.read_text()[-3000:]}")


def _automation_ticks(instance) -> int:
    states = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
              if s.instigator_name == AUTOMATION_SENSOR_NAME]
    return sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=5)) for s in states)


@pytest.mark.slow
def test_a_new_scrape_leads_the_daemon_to_materialize_the_dataset(tmp_path, monkeypatch):
    home, data, log = tmp_path / "home", tmp_path / "data", tmp_path / "daemon.log"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "FASHION_PIPELINE_DATA": str(data), "FASHION_PIPELINE_SETTINGS": "demo",
           AUTOMATION_INTERVAL_ENV_VAR: "5"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPO / "workspace.yaml")],
                              cwd=REPO, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Nobody turned the sensor on: its default status is RUNNING. Its first tick sees nothing new.
            _wait_for("automation tick", lambda: _automation_ticks(instance), daemon, log, timeout=120)
            scrape = defs.resolve_job_def("demo_brand").execute_in_process(partition_key="hermes", instance=instance)
            assert scrape.success
            event = _wait_for("pinterest_dataset materialization",
                              lambda: instance.get_latest_materialization_event(dg.AssetKey("pinterest_dataset")),
                              daemon, log, timeout=240)
            run = _wait_for("the automation run to finish", lambda: (lambda r: r if r.is_finished else None)(
                instance.get_run_by_id(event.run_id)), daemon, log, timeout=120)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags.get("dagster/from_automation_condition") == "true", run.tags  # launched by the sensor
            assert event.asset_materialization.metadata["brands_merged"].value == 1  # hermes, the one scraped
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
