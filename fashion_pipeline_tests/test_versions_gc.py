"""Materialization folders (``common.versions``), their garbage collection (``fashion_pipeline.gc``), and file modes."""
import os
import stat
import time

import dagster as dg
import pytest

from fashion_pipeline import gc
from fashion_pipeline.common import atomic, versions
from fashion_pipeline_tests.records import record


def _publish(root, asset, text, *parts, version=None):
    with versions.staging(root, asset, *parts) as out:
        atomic.write_text(out.path("data.txt"), text)
        return out.publish(version)


def test_a_folder_appears_complete_under_its_version_or_not_at_all(tmp_path):
    first = _publish(tmp_path, "thing", "one", "p")
    assert first.relative == f"thing/p/v/{first.version}" and not first.reused
    assert first.version == versions.content_version(first.folder)
    with pytest.raises(RuntimeError):
        with versions.staging(tmp_path, "thing", "p") as out:
            atomic.write_text(out.path("data.txt"), "half")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in (tmp_path / "thing" / "p" / "v").iterdir()] == [first.version]  # no staging left
    assert (first.folder / "data.txt").read_text() == "one"


def test_the_same_version_is_reused_and_never_rewritten(tmp_path):
    first = _publish(tmp_path, "thing", "one", version="k1")
    mtime = (first.folder / "data.txt").stat().st_mtime_ns
    again = _publish(tmp_path, "thing", "something else", version="k1")
    assert again.reused and again.folder == first.folder
    assert (first.folder / "data.txt").read_text() == "one" and (first.folder / "data.txt").stat().st_mtime_ns == mtime
    assert versions.find(tmp_path, "thing", version="k1") == again
    assert versions.find(tmp_path, "thing", version="k2") is None


def test_link_shares_the_bytes_and_a_later_atomic_write_leaves_the_published_file_alone(tmp_path):
    cache = versions.resume_dir(tmp_path, "trainer", "p", key="data1")
    atomic.write_text(cache / "model.pt", "weights v1")
    with versions.staging(tmp_path, "trainer", "p") as out:
        out.link(cache / "model.pt")
        published = out.publish()
    assert os.stat(published.file("model.pt")).st_ino == os.stat(cache / "model.pt").st_ino  # no copy
    atomic.write_text(cache / "model.pt", "weights v2")  # the trainer's next checkpoint
    assert published.file("model.pt").read_text() == "weights v1"


def test_published_relative_names_files_where_they_will_lie(tmp_path):
    with versions.staging(tmp_path, "crops") as out:
        path = out.path("crops/a.png")
        assert out.published_relative(path, "k") == "crops/v/k/crops/a.png"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_get_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # not mkstemp's 0600


# ---------------------------------------------------------------- gc


def _age(folder, seconds):
    when = time.time() - seconds
    os.utime(folder, (when, when))


def test_gc_keeps_the_latest_n_and_every_folder_a_kept_record_names(tmp_path):
    with dg.instance_for_test() as instance:
        folders = []
        for index in range(4):
            published = _publish(tmp_path, "a", "x" * 1000 * (index + 1), "p")
            record(instance, "a", {"folder": published.relative, "n": index}, partition="p")
            folders.append(published)
        # b's only record names a's oldest folder (as best_detector names a fashion_detector checkpoint)
        record(instance, "b", {"checkpoint": folders[0].relative_file("data.txt")})
        unrecorded_old = _publish(tmp_path, "a", "never recorded", "p")
        unrecorded_young = _publish(tmp_path, "a", "being recorded", "p")
        dead = tmp_path / "a" / "p" / "v" / f"{versions.STAGING_PREFIX}999999999-dead"
        dead.mkdir()
        for published in folders + [unrecorded_old]:
            _age(published.folder, 7200)

        dry = gc.collect(instance, tmp_path, keep=2, dry_run=True, log=lambda _: None)
        assert dry["removed"] == 3 and all(p.folder.exists() for p in folders)

        lines = []
        summary = gc.collect(instance, tmp_path, keep=2, log=lines.append)
    assert summary["removed"] == 3  # a's second folder, the unrecorded old one, the dead staging folder
    assert folders[0].folder.exists()  # named by b
    assert not folders[1].folder.exists()
    assert folders[2].folder.exists() and folders[3].folder.exists()  # the latest 2 of a[p]
    assert not unrecorded_old.folder.exists() and unrecorded_young.folder.exists() and not dead.exists()
    assert summary["freed_bytes"] == 2000 + len("never recorded")
    assert lines[-1].startswith("gc: freed 0.0 MiB in 3 folder(s)")


def test_gc_counts_a_hard_linked_file_only_when_its_last_link_goes(tmp_path):
    cache = versions.resume_dir(tmp_path, "t", key="k")
    atomic.write_bytes(cache / "model.pt", b"w" * 5000)
    with versions.staging(tmp_path, "t") as out:
        out.link(cache / "model.pt")
        published = out.publish()
    _age(published.folder, 7200)
    with dg.instance_for_test() as instance:
        record(instance, "t", {"n": 1})  # a record naming no folder: the published one is unnamed
        summary = gc.collect(instance, tmp_path, keep=1, log=lambda _: None)
    assert summary["removed"] == 1 and summary["freed_bytes"] == 0  # the resume cache still holds the bytes
    assert (cache / "model.pt").exists()


def test_gc_cli(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    data = tmp_path / "data"
    old = _publish(data, "a", "old")
    new = _publish(data, "a", "new")
    _age(old.folder, 7200)
    with dg.DagsterInstance.get() as instance:
        record(instance, "a", {"folder": old.relative})
        record(instance, "a", {"folder": new.relative})
    assert gc.main(["--keep", "1", "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old.relative} (named by no kept materialization)" in out and "gc: freed" in out
    assert not old.folder.exists() and new.folder.exists()
    with pytest.raises(SystemExit):
        gc.main(["--keep", "0"])
