"""deploy/dagster-postgres.yaml against a real PostgreSQL server on loopback.

The server is Debian's ``postgresql`` (``make test`` installs it when missing), started in a temporary
data directory, as the ``postgres`` user when the tests run as root, and stopped at the end. When it
is not installed (or there is no user to run it as), the tests are skipped with the reason; when it is
installed but does not start, they fail with the server's own message.
"""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "dagster-postgres.yaml"
PG_USER = "dagster_test"
PG_PASSWORD = "pw-7c1e9f-not-a-real-secret"
PG_DB = "fashion_dagster"
ENV_VARS = ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--", *argv]


def _server_dir() -> Path:
    """A fresh folder the server's user can reach: pytest's own tmp folders are private to root (0700)."""
    base = Path(tempfile.mkdtemp(prefix="fashion_pg_"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    return base


@pytest.fixture(scope="module")
def postgres():
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("Debian's postgresql is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                    "`make install` (system-deps) installs it with apt")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    base = _server_dir()
    data, sockets, pwfile, log = base / "data", base / "sock", base / "pw", base / "server.log"
    port = _free_port()

    def run(argv):
        return subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=60)

    try:
        sockets.mkdir()
        pwfile.write_text(PG_PASSWORD + "\n")  # the password reaches initdb through a file, never argv
        if os.geteuid() == 0:
            for path in (sockets, pwfile):
                shutil.chown(path, "postgres")
        # Installed but unable to start is a broken set-up, not a reason to skip: fail with the server's words.
        init = run([str(pg_bin / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"])
        assert init.returncode == 0, f"initdb failed: {init.stderr.strip()[-800:]}"
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
        start = run([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "30", "start"])
        assert start.returncode == 0, f"PostgreSQL did not start: {(log.read_text() if log.exists() else start.stderr)[-800:]}"
        try:
            created = run([str(pg_bin / "createdb"), "-h", str(sockets), "-p", str(port), "-U", PG_USER, PG_DB])
            assert created.returncode == 0, created.stderr
            yield {"DAGSTER_PG_USERNAME": PG_USER, "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_HOST": "127.0.0.1",
                   "DAGSTER_PG_DB": PG_DB, "DAGSTER_PG_PORT": str(port)}
        finally:
            run([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_home(postgres, tmp_path, monkeypatch):
    """A DAGSTER_HOME whose dagster.yaml is deploy/dagster-postgres.yaml, credentials in the environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    for name, value in postgres.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("RENDEZVOUS_DIR", str(tmp_path / "rendezvous"))
    (tmp_path / "rendezvous").mkdir()
    return home


def _rendezvous(name: str) -> bool:
    """Each concurrent run marks its arrival, then waits for the other: True only when both were running at once."""
    folder = Path(os.environ["RENDEZVOUS_DIR"])
    (folder / name).touch()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(list(folder.iterdir())) >= 2:
            return True
        time.sleep(0.05)
    return False


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["cropped", "original", "subset"]), pool="gpu")
def scores(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    overlapped = _rendezvous(context.partition_key) if os.environ.get("RENDEZVOUS") else False
    return dg.MaterializeResult(metadata={"variant": context.partition_key, "fid": 10.0 + len(context.partition_key),
                                          "overlapped": overlapped, "pid": os.getpid()})


@dg.asset(deps=[scores])
def report() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3, "table": dg.MetadataValue.md("| a |\n|---|\n| 1 |")})


def _materialize_in_own_process(partition: str) -> tuple[bool, str]:
    """Runs in a fresh (spawned) process: its own instance, loaded from $DAGSTER_HOME, its own connections."""
    os.environ["RENDEZVOUS"] = "1"
    with dg.DagsterInstance.get() as instance:
        assert instance.run_storage.__class__.__name__ == "PostgresRunStorage"
        result = dg.materialize([scores], instance=instance, partition_key=partition)
        return result.success, result.run_id


def test_materializations_on_postgres_two_of_them_concurrent(pg_home):
    with dg.DagsterInstance.get() as instance:
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            assert type(storage).__module__.startswith("dagster_postgres"), type(storage)
        # the gpu pool's limit is instance state: set it as the docs say, read it back
        instance.event_log_storage.set_concurrency_slots("gpu", 2)
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2

        first = dg.materialize([scores], instance=instance, partition_key="subset")
        assert first.success

    # two runs at the same time, each in its own process with its own instance
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        outcomes = list(pool.map(_materialize_in_own_process, ["cropped", "original"]))
    assert all(ok for ok, _ in outcomes), outcomes

    with dg.DagsterInstance.get() as instance:
        last = dg.materialize([scores, report], instance=instance, selection=[report])
        assert last.success

        key = dg.AssetKey("scores")
        assert instance.get_materialized_partitions(key) == {"cropped", "original", "subset"}
        records = instance.fetch_materializations(key, limit=10).records
        assert len(records) == 3
        by_variant = {r.asset_materialization.metadata["variant"].value: r for r in records}
        assert by_variant["original"].asset_materialization.metadata["fid"].value == pytest.approx(18.0)
        # both concurrent runs were inside their asset at the same time, in two processes
        concurrent = [by_variant[v].asset_materialization.metadata for v in ("cropped", "original")]
        assert all(m["overlapped"].value is True for m in concurrent)
        assert concurrent[0]["pid"].value != concurrent[1]["pid"].value
        assert {by_variant[v].run_id for v in ("cropped", "original")} == {run_id for _, run_id in outcomes}

        latest_report = instance.get_latest_materialization_event(dg.AssetKey("report"))
        assert latest_report.asset_materialization.metadata["rows"].value == 3
        assert len(instance.get_runs()) == 4

        # no credential in run config, tags, logs or metadata
        for run in instance.get_runs():
            assert PG_PASSWORD not in json.dumps(run.run_config, default=str) + json.dumps(run.tags)
            for entry in instance.all_logs(run.run_id):
                assert PG_PASSWORD not in dg.serialize_value(entry)


@pytest.mark.parametrize("missing", ["DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST"])
def test_missing_postgres_credentials_name_the_variable(tmp_path, monkeypatch, missing):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    for name in ENV_VARS:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    monkeypatch.delenv(missing)
    with pytest.raises(Exception, match=missing):
        dg.DagsterInstance.from_config(str(home))
