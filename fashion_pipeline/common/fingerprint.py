"""Content fingerprints: what a stage's output *is*, independent of where it lies.

They become Dagster data versions (so a change of content marks downstream assets stale) and
the resume keys of the training stages (so a checkpoint is continued only on the same data).
Plain Python, no Dagster, so the training CLIs can use them too.
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

CHUNK = 1 << 20
SHORT = 20  # hex digits kept: 80 bits, plenty to tell versions apart, short enough to read in the UI


def file_sha256(path: str | os.PathLike) -> str:
    """The full sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def combine(parts: Iterable[str]) -> str:
    """One short fingerprint of an ordered sequence of strings (digests, ids, settings)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = str(part).encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))  # length-prefixed: ("ab","c") != ("a","bc")
        digest.update(encoded)
    return digest.hexdigest()[:SHORT]


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """One fingerprint of several files' contents, in the order given."""
    return combine(file_sha256(path) for path in paths)
