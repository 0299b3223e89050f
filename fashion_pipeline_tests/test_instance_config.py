"""The repo's ``dagster.yaml`` gives one instance under ``DAGSTER_HOME`` from any working directory.

A relative ``base_dir`` in the instance config resolves against the process's cwd, so a CLI or
daemon started outside the repo root used to make a second, empty instance there. Here the
config is loaded for real (``DagsterInstance.get()`` reads ``$DAGSTER_HOME/dagster.yaml``) from a
cwd that is not ``DAGSTER_HOME``, a run is made, and every file must land under ``DAGSTER_HOME``.
"""
import shutil
from pathlib import Path

import dagster as dg

REPO_ROOT = Path(__file__).resolve().parents[1]


@dg.asset
def tiny_asset(context: dg.AssetExecutionContext) -> int:
    context.log.info("tiny_asset ran")
    print("tiny_asset stdout")  # captured by the compute log manager
    return 1


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_instance_config_resolves_against_dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    elsewhere = tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(elsewhere)

    with dg.DagsterInstance.get() as instance:
        assert instance.is_persistent
        result = dg.materialize([tiny_asset], instance=instance)
        assert result.success
        run_id = result.run_id

    # SQLite run, event-log and schedule storage, asset outputs and compute logs: all under
    # DAGSTER_HOME (Dagster's defaults), none in the working directory.
    files = _files_under(home)
    assert "history/runs.db" in files, files
    assert "history/runs/index.db" in files, files
    assert f"history/runs/{run_id}.db" in files, files
    assert "schedules/schedules.db" in files, files
    assert "storage/tiny_asset" in files, files
    assert any(f.startswith(f"storage/{run_id}/compute_logs/") for f in files), files
    assert list(elsewhere.iterdir()) == []

    # The same instance is found from yet another working directory.
    other_cwd = tmp_path / "other_cwd"
    other_cwd.mkdir()
    monkeypatch.chdir(other_cwd)
    with dg.DagsterInstance.from_config(str(home)) as again:
        run = again.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert again.get_latest_materialization_event(dg.AssetKey("tiny_asset")) is not None
    assert list(other_cwd.iterdir()) == []


def test_instance_settings(tmp_path):
    # A copy, so that loading the instance creates no storage in the repo root.
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        # Local, offline project: no telemetry and no first-visit community modal in the UI.
        assert instance.telemetry_enabled is False
        assert instance.nux_enabled is False
        # Failed runs are retried by the daemon, at most twice; an asset that raises is left to its
        # own RetryPolicy (a run opts in with the tag dagster/retry_on_asset_or_op_failure).
        assert instance.run_retries_enabled is True
        assert instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        # pool="gpu" (and any other unconfigured pool) runs one step at a time.
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
