"""Parse DeepFashion's list files: a count line, a column-name line, then space-aligned rows.

(``read_plain_file`` reads the fine set's per-split files, which have neither line: one row a line.)

Parsing is vectorised (pandas' C tokenizer); only when something is wrong do we go back to the
text to find the offending line, so errors always name ``file:line``. Structural problems are
errors (``ListFileError``), never skips:

- a missing file, a first line that is not a count, a second line with the wrong number of columns;
- a row with too many or too few fields, a non-integer in an integer column, a blank line;
- a count line that disagrees with the number of rows;
- an image name listed twice.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd


class ListFileError(ValueError):
    """A list file is malformed; the message starts with ``path:line:``."""

    def __init__(self, path: Path | str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line


def read_list_file(path: Path, columns: tuple[str, ...], integer_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows of one list file as a DataFrame with ``columns``, plus ``line`` (1-based line number in the file)."""
    if not path.is_file():
        raise ListFileError(path, 0, "file not found")
    raw = path.read_bytes()
    count, header, body, body_first_line = _split_head(path, raw)
    names = header.split()
    if len(names) != len(columns):
        raise ListFileError(path, 2, f"expected the {len(columns)} column names {' '.join(columns)!r}, found {header.strip()!r}")
    frame = _parse_body(path, body, columns, integer_columns, body_first_line)
    if count != len(frame):
        raise ListFileError(path, 1, f"count line says {count} rows but {len(frame)} rows follow")
    return frame


def read_plain_file(path: Path, columns: tuple[str, ...], integer_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A file of rows only (``Anno_fine/train_bbox.txt``...): ``columns`` plus ``line`` (1-based)."""
    if not path.is_file():
        raise ListFileError(path, 0, "file not found")
    return _parse_body(path, path.read_bytes().rstrip(), columns, integer_columns, 1)


def _split_head(path: Path, raw: bytes) -> tuple[int, str, bytes, int]:
    """The count, the header line, and the rest (trailing blank lines dropped)."""
    parts = raw.split(b"\n", 2)
    if len(parts) < 2:
        raise ListFileError(path, len(parts), "expected a count line and a column-name line")
    count_text = parts[0].decode("utf-8", "replace").strip()
    if not count_text.isdigit():
        raise ListFileError(path, 1, f"expected the number of rows, found {count_text!r}")
    body = parts[2].rstrip() if len(parts) == 3 else b""
    return int(count_text), parts[1].decode("utf-8", "replace"), body, 3


def _parse_body(
    path: Path, body: bytes, columns: tuple[str, ...], integer_columns: tuple[str, ...], first_line: int
) -> pd.DataFrame:
    if not body:
        frame = pd.DataFrame({name: pd.Series([], dtype="int64" if name in integer_columns else "str") for name in columns})
        frame["line"] = pd.Series([], dtype="int64")
        return frame
    dtypes = {name: "str" for name in columns if name not in integer_columns}
    try:
        frame = pd.read_csv(
            io.BytesIO(body), sep=r"\s+", header=None, names=list(columns), dtype=dtypes,
            skip_blank_lines=False, engine="c", na_filter=True, keep_default_na=False, na_values=[""],
        )
    except (pd.errors.ParserError, ValueError):
        _raise_at_first_bad_row(path, body, len(columns), first_line)
        raise  # _raise_at_first_bad_row always raises; this keeps type checkers calm
    missing = frame[list(columns)].isna().to_numpy().any(axis=1)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        present = int(frame[list(columns)].iloc[row].notna().sum())
        found = "a blank line" if present == 0 else f"{present} fields"
        raise ListFileError(path, first_line + row, f"expected {len(columns)} fields ({' '.join(columns)}), found {found}")
    for name in integer_columns:
        frame[name] = _integer_column(path, frame[name], name, first_line)
    frame["line"] = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    return frame


def _integer_column(path: Path, values: pd.Series, name: str, first_line: int) -> pd.Series:
    if pd.api.types.is_integer_dtype(values):
        return values.astype(np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy() | (numbers.to_numpy(dtype=float, na_value=np.nan) % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ListFileError(path, first_line + row, f"column {name} must be an integer, found {values.iloc[row]!r}")
    return numbers.astype(np.int64)


def _raise_at_first_bad_row(path: Path, body: bytes, field_count: int, first_line: int) -> None:
    """Slow path, only on error: find the first line whose field count is wrong."""
    for offset, line in enumerate(body.split(b"\n")):
        fields = line.split()
        if len(fields) != field_count:
            found = "a blank line" if not fields else f"{len(fields)} fields"
            raise ListFileError(path, first_line + offset, f"expected {field_count} fields, found {found}")
    raise ListFileError(path, first_line, "could not be parsed")


def check_unique(path: Path, frame: pd.DataFrame, column: str = "image_name") -> None:
    """Every image appears once per list file."""
    duplicated = frame[column].duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise ListFileError(path, int(frame["line"].iloc[row]), f"{frame[column].iloc[row]} is listed twice")
