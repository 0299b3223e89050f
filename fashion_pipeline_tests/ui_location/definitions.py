"""Test-only code location for ``test_ui_backfill.py``: cheap assets, no project imports.

``UI_TEST_OUT`` names a folder the assets write to, so the test can see what ran and when:

* ``cheap_partitioned``: three static partitions in pool ``gpu`` (the instance's
  ``pools: default_limit: 1`` allows one at a time). Each writes ``cheap_<partition>.json``
  with its start/end wall time and pid, so the test can check that no two overlapped.
* ``flaky_once``: fails on its first attempt and succeeds afterwards (a marker file in
  ``UI_TEST_OUT`` remembers the first attempt), and ``always_fails``: to exercise the
  instance's run retries.
"""
import json
import os
import time
from pathlib import Path

import dagster as dg

OUT_ENV = "UI_TEST_OUT"
PARTITIONS = ("a", "b", "c")
SLEEP_SECONDS = 1.5


def _out_dir() -> Path:
    out = Path(os.environ[OUT_ENV])
    out.mkdir(parents=True, exist_ok=True)
    return out


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(list(PARTITIONS)), pool="gpu")
def cheap_partitioned(context: dg.AssetExecutionContext) -> None:
    start = time.time()
    time.sleep(SLEEP_SECONDS)
    end = time.time()
    record = {"partition": context.partition_key, "start": start, "end": end, "pid": os.getpid()}
    path = _out_dir() / f"cheap_{context.partition_key}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


@dg.asset
def flaky_once() -> None:
    marker = _out_dir() / "flaky_once.attempted"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        raise RuntimeError("flaky_once: first attempt fails on purpose (run retries test)")


@dg.asset
def always_fails() -> None:
    raise RuntimeError("always_fails: fails on purpose (run retries test)")


defs = dg.Definitions(assets=[cheap_partitioned, flaky_once, always_fails])
