"""Never overwrite a recorded materialization: each one writes a folder of its own.

Layout under an asset's home (``<data_root>/<asset>[/<partition parts>]``)::

    v/<version>/            published: complete, never written again (named by data version or input key)
    v/.staging-<pid>-<r>/   being written by a run; renamed to v/<version>/ in one step when complete
    resume/<key>/           a training stage's resume cache (checkpoints), keyed by what it trains on

Like git's object store: a folder is written once under its name, and only the ref moves. Here
the ref is Dagster's record: the materialization's metadata names its folder (``folder``, relative
to the data root) and the files in it, and consumers read those. A run that fails at any point
(an exception, a failed blocking check, ``kill -9``) leaves at most a staging folder or an
unrecorded version behind; every recorded folder stays as it was. ``fashion_pipeline.gc`` removes
the folders that no kept record names.

A rerun with nothing new copies nothing: an asset whose output is a function of its inputs looks
up ``v/<input key>`` first and reuses it; a training asset publishes hard links to the files its
trainer wrote in the resume cache, and an identical result (same data version) reuses the folder
that already holds it. Plain Python, no Dagster.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from fashion_pipeline.common.fingerprint import combine, file_sha256

VERSIONS = "v"
RESUME = "resume"
STAGING_PREFIX = ".staging-"


def home(data_root: Path, asset: str, *parts: str) -> Path:
    """``<data_root>/<asset>/<parts...>``: where one asset (partition) keeps its versions and resume cache."""
    return Path(data_root).joinpath(asset, *parts)


def resume_dir(data_root: Path, asset: str, *parts: str, key: str) -> Path:
    """The resume cache for training on ``key`` (the content of what is trained on): not published, not immutable."""
    path = home(data_root, asset, *parts) / RESUME / key
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Published:
    """A published folder: ``folder`` absolute, ``relative`` to the data root (what metadata records)."""

    folder: Path
    relative: str
    version: str
    reused: bool

    def file(self, name: str) -> Path:
        return self.folder / name

    def relative_file(self, name: str) -> str:
        return f"{self.relative}/{name}"


def _published(data_root: Path, folder: Path, reused: bool) -> Published:
    return Published(folder, str(folder.relative_to(data_root)), folder.name, reused)


def find(data_root: Path, asset: str, *parts: str, version: str) -> Optional[Published]:
    """The published ``v/<version>`` of this asset (partition), or None. Existing means complete: it appears by rename."""
    folder = home(data_root, asset, *parts) / VERSIONS / version
    return _published(Path(data_root), folder, reused=True) if folder.is_dir() else None


def input_key(*parts) -> str:
    """A deterministic asset's folder name: its code version, its inputs' data versions and its config (any
    JSON-able parts). The same inputs name the same folder, so a rerun with nothing new finds it and writes nothing."""
    return combine(json.dumps(part, sort_keys=True, default=str) for part in parts)


def content_version(folder: Path) -> str:
    """A fingerprint of every file under ``folder``: relative paths and contents, in sorted order."""
    parts = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        parts += [str(path.relative_to(folder)), file_sha256(path)]
    return combine(parts)


class Staging:
    """A new folder being written; ``publish`` makes it ``v/<version>`` in one rename."""

    def __init__(self, data_root: Path, asset: str, *parts: str):
        self.data_root = Path(data_root)
        self.versions = home(data_root, asset, *parts) / VERSIONS
        self.versions.mkdir(parents=True, exist_ok=True)
        # the pid lets gc tell a live writer's staging folder from one a killed run left
        self.dir = self.versions / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir()
        self.published: Optional[Published] = None

    def path(self, name: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def published_relative(self, path: Path, version: str) -> str:
        """Where ``path`` (inside this staging folder) will be once published as ``version``, relative to the
        data root: for files that name other files (a manifest's paths) when the version is known up front."""
        return str((self.versions / version / Path(path).relative_to(self.dir)).relative_to(self.data_root))

    def link(self, source: Path, name: Optional[str] = None) -> Path:
        """Put ``source`` into the folder without copying its bytes (a hard link; a copy across file systems).

        Safe because every writer replaces files (``common.atomic``) rather than writing into them, so
        the trainer's next checkpoint never changes a published file's inode."""
        target = self.path(name or Path(source).name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        return target

    def publish(self, version: Optional[str] = None) -> Published:
        """Rename into ``v/<version>`` (default: the content fingerprint). When that version exists already
        (an identical earlier result, or a concurrent run), it is kept and this copy is dropped."""
        version = version or content_version(self.dir)
        final = self.versions / version
        if final.is_dir():
            self.discard()
            self.published = _published(self.data_root, final, reused=True)
            return self.published
        _fsync_tree(self.dir)
        try:
            os.rename(self.dir, final)
        except OSError:  # another run published the same version between our check and rename
            if not final.is_dir():
                raise
            self.discard()
            self.published = _published(self.data_root, final, reused=True)
            return self.published
        _fsync_dir(self.versions)
        self.published = _published(self.data_root, final, reused=False)
        return self.published

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def staging(data_root: Path, asset: str, *parts: str) -> Iterator[Staging]:
    """``with staging(root, asset, partition) as out: write out.path(...); out.publish(version)``.
    Leaving the block without publishing (an exception) removes the staging folder."""
    stage = Staging(data_root, asset, *parts)
    try:
        yield stage
    finally:
        if stage.published is None:
            stage.discard()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Files written by ``common.atomic`` are fsynced already; the folders' entries need it before the rename."""
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def version_folder_of(relative_path: str) -> Optional[str]:
    """``a/b/v/<version>`` for a recorded path inside a published folder, else None (gc's view of metadata)."""
    parts = Path(str(relative_path)).parts
    for index in range(len(parts) - 1, 0, -1):
        if parts[index - 1] == VERSIONS and not parts[index].startswith("."):
            return str(Path(*parts[:index + 1]))
    return None


def published_folders(data_root: Path, asset: str, *parts: str) -> list[Published]:
    """Every published ``v/<version>`` of this asset (partition), oldest first; staging folders are left out.

    Ordered by the folder's mtime: the last entry written into it while it was staged, just before the
    rename that published it (a rename keeps it, and so do ``mv`` and ``cp -a`` of the data root); ties
    by name, so the order is total."""
    data_root = Path(data_root)
    versions_dir = home(data_root, asset, *parts) / VERSIONS
    if not versions_dir.is_dir():
        return []
    folders = [p for p in versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    folders.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [_published(data_root, folder, reused=True) for folder in folders]


def latest_published(data_root: Path, asset: str, *parts: str, containing: Optional[str] = None) -> Optional[Published]:
    """The most recently published folder of this asset (partition), or None; with ``containing``, the most
    recent one that holds that file (a 128-px training set's folder has no 64-px array).

    A command-line convenience only. Dagster's record is what assets read; the newest folder on disk
    may be one that no record names (a run that failed after publishing, a CLI run), and a rerun that
    reused an older folder does not make it newest. Pass explicit paths when that matters."""
    for published in reversed(published_folders(data_root, asset, *parts)):
        if containing is None or (published.folder / containing).exists():
            return published
    return None


def latest_published_file(data_root: Path, asset: str, *parts: str, name: str, flag: str) -> Path:
    """``latest_published(...).file(name)`` for a CLI default, or a FileNotFoundError that says what to
    materialize, or which flag (``flag``) to pass instead."""
    published = latest_published(data_root, asset, *parts, containing=name)
    if published is None:
        where = home(data_root, asset, *parts) / VERSIONS
        raise FileNotFoundError(f"no published folder with {name} under {where}: materialize {asset} first, "
                                f"or pass {flag}")
    return published.file(name)
