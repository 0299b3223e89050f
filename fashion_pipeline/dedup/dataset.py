"""Build ``pinterest_dataset``: every brand's scraped images merged, duplicates removed.

Steps, each a function below so tests and the CLI reach them without Dagster:

1. ``load_inputs``: read every ``pinterest_images/<brand>/manifest.parquet`` under the data root.
2. ``hash_inputs``: sha256 + pHash per file (``phash.py``), reusing the shared cache
   ``pinterest_dataset/phash_cache.parquet`` (a cache: written atomically, named by no record);
   files that are missing, unreadable, truncated or changed since download are *quarantined*.
3. ``deduplicate``: identical content (sha256) collapses first; the distinct contents are then
   searched for pHash pairs within ``threshold`` bits (``search.py``) and joined into clusters by
   union-find (``cluster.py``). Each cluster keeps its highest-resolution copy (ties: larger file,
   then smaller sha256) with the provenance of every brand and pin it was seen in.
4. ``write_outputs``: ``manifest.parquet`` (one row per kept image), ``mapping.parquet`` (every input
   row -> kept image and why), ``quarantine.parquet``, ``signatures.parquet`` (the kept images' pHash
   and thumbnails, what the near-duplicate check reads), ``summary.json``, into a folder of its own,
   ``pinterest_dataset/v/<input key>/`` (``common.versions``), published by one rename. The key is
   the rows merged, their files' sizes and mtimes, the settings and ``BUILD_VERSION``: a rerun with
   nothing new reuses the folder and hashes and writes nothing; a failed run never touches a
   recorded folder.

Defaults, from ``bench/dedup_quality.py`` (93 distinct base pictures x 20 transformations; full
tables in bench/results/dedup_quality.md) and the embedded site's planted duplicates:

* **Threshold 10 bits of 64.** (Figures of the 2026-11-22 run, before colourways joined the pool.) pHash alone at 10 bits: recall 0.99 on JPEG re-encodes down to
  q30, downscales to 236/474/736 px, PNG<->JPEG and brightness/contrast/saturation/greyscale
  changes (the miss is a chessboard, whose pHash is unstable), 0.88-0.96 on 2-10 % uniform borders
  (trimmed first, see ``phash.py``), 0.95 on 2 % crops and hue shifts, 0.44 on 5 % crops; 4 false
  pairs over the whole pool. 8 bits loses 5-17 points on borders and crops for 2 fewer false
  pairs; 12 bits gains 2-18 points there but brings 68 false pairs.
* **Colour check 0.25.** pHash sees only the coarse grey layout, and runway pictures share one:
  on the embedded site most pHash pairs at 10 bits were *different* looks on the same backdrop
  (24 of 28 on a 336-image scrape: planted-pair precision 0.15). Each candidate pair is therefore
  confirmed on 16x16 colour thumbnails (``phash.thumbnail_distance``): per-channel standardised
  colour when both sides are in colour; luminance alone when one side is black and white, toned
  monochrome or clearly desaturated (a greyscale repost); and refused when both carry colour but
  their hues disagree (another colourway of the garment). Measured 2026-12-01 against the
  per-channel check alone, same run (83 bases, 40 colourways made by turning a picture's dominant
  colour 120 degrees): greyscale recall 0.81 -> 0.99, sepia 0.82 -> 0.99, 70 % desaturated
  0.93 -> 0.99, colourways kept apart 0.60 -> 0.97, false pairs 328 -> 106, of which 78 are a grey
  copy ~ a colourway of its picture, which no pairwise check can split (same luminance): the
  clustering lets a grey copy join one colourway, never merge two (``cluster_pairs``), and keeps a
  colour copy over a grey one. Borders and crops cost recall as before (5 % crops 0.40 -> 0.22).
  ``max_thumb_distance=None`` (asset config ``verify_colour=False``) turns it off.
* **Mirrors off.** ``match_mirrors`` finds left-right flipped copies (recall 0 -> 0.99) for a few
  more false pairs; flipped reposts are rare, so it is opt-in.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_pipeline.common import versions
from fashion_pipeline.common.atomic import write_json, write_parquet
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.dedup import phash
from fashion_pipeline.dedup.cluster import cluster_labels_with_refusals
from fashion_pipeline.dedup.search import Pairs, find_pairs, hamming

INPUT_ASSET = "pinterest_images"
OUTPUT_ASSET = "pinterest_dataset"
INPUT_COLUMNS = ["pin_id", "page_url", "image_url", "file_path", "sha256", "width", "height", "brand", "scraped_at"]
GROUND_TRUTH = Path("pinterest_site") / "ground_truth.json"
DEFAULT_THRESHOLD = 10
DEFAULT_MAX_THUMB_DISTANCE = 0.25
REASONS = ("kept", "exact_duplicate", "near_duplicate", "quarantined")
# Bump when a code change alters the outputs for the same inputs and settings: it names the output folder.
BUILD_VERSION = "3"  # 3: one folder per build (v/<input key>/), signatures.parquet in it
CACHE_FILE = "phash_cache.parquet"  # shared by every build, at pinterest_dataset/phash_cache.parquet
SIGNATURES_FILE = "signatures.parquet"
OUTPUT_FILES = {"manifest": "manifest.parquet", "mapping": "mapping.parquet", "quarantine": "quarantine.parquet",
                "signatures": SIGNATURES_FILE, "summary": "summary.json"}


@dataclass
class DedupSettings:
    threshold: int = DEFAULT_THRESHOLD
    match_mirrors: bool = False
    workers: int | None = None  # hashing processes; None = every core
    max_thumb_distance: float | None = DEFAULT_MAX_THUMB_DISTANCE  # None: trust pHash alone


@dataclass
class DedupResult:
    manifest: pd.DataFrame
    mapping: pd.DataFrame
    quarantine: pd.DataFrame
    pairs: Pairs  # near-duplicate pairs, as indices into ``contents``
    contents: pd.DataFrame  # one row per distinct file content that hashed cleanly
    stats: dict = field(default_factory=dict)


# --- 1. inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestSlice:
    """A brand manifest, or only its first ``rows`` rows: what one recorded scrape committed when a
    later scrape appended to the same file (the manifest is append-only, keyed by pin)."""

    path: Path
    rows: int | None = None


def brand_manifests(data_root: Path) -> list[Path]:
    return sorted((Path(data_root) / INPUT_ASSET).glob("*/manifest.parquet"))


def read_manifest(manifest: Path | ManifestSlice) -> pd.DataFrame:
    """A brand manifest's rows (the slice's first rows only), checked for the columns the merge needs."""
    part = manifest if isinstance(manifest, ManifestSlice) else ManifestSlice(Path(manifest))
    frame = pd.read_parquet(part.path)
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{part.path}: manifest lacks columns {missing} (has {list(frame.columns)})")
    return frame if part.rows is None else frame.iloc[: part.rows]


def load_inputs(data_root: Path, manifests: list[Path | ManifestSlice] | None = None) -> pd.DataFrame:
    """The brand manifests' rows, in the order given, with ``input_id`` numbering them.

    ``manifests``: which brand manifests to merge (the asset passes those Dagster recorded for the
    brands of the current brands file, as slices when a brand is served from an earlier scrape);
    by default every one under the data root (CLI use).
    """
    frames = []
    for manifest in brand_manifests(data_root) if manifests is None else manifests:
        path = manifest.path if isinstance(manifest, ManifestSlice) else Path(manifest)
        frame = read_manifest(manifest)[INPUT_COLUMNS].copy()
        frame["manifest"] = str(path.relative_to(data_root))
        frames.append(frame)
    if not frames:
        inputs = pd.DataFrame(columns=INPUT_COLUMNS + ["manifest"])
    else:
        inputs = pd.concat(frames, ignore_index=True)
    inputs["pin_id"] = inputs["pin_id"].astype(str)
    inputs["input_id"] = np.arange(len(inputs), dtype=np.int64)
    return inputs


# --- 2. hashing -----------------------------------------------------------------------------------


def _resolve(data_root: Path, relative: str) -> Path | None:
    """The absolute file, or None when the manifest path escapes the data root."""
    if not isinstance(relative, str) or not relative:
        return None
    path = (data_root / relative).resolve()
    return path if path.is_relative_to(data_root.resolve()) else None


def _cached_hash(cache: pd.DataFrame, sha256, path: Path) -> phash.FileHash | None:
    """The cached result for this file, when its manifest sha256 is cached and its size still matches."""
    if not isinstance(sha256, str) or sha256 not in cache.index:
        return None
    entry = cache.loc[sha256]
    try:
        if path.stat().st_size != int(entry["n_bytes"]):
            return None
    except OSError:
        return None
    return phash.FileHash(str(path), sha256, int(entry["phash"]), int(entry["phash_mirror"]), int(entry["width"]),
                          int(entry["height"]), int(entry["n_bytes"]), None, bytes(entry["thumb"]))


def hash_inputs(inputs: pd.DataFrame, data_root: Path, cache_path: Path, workers: int | None = None):
    """Per input row: content sha256, pHash, size, or the ``problem`` that quarantines it.

    Returns (rows, new cache frame, counts) where counts says how many files were hashed vs cached.
    """
    data_root = Path(data_root)
    cache = phash.load_cache(cache_path)
    files = inputs.drop_duplicates("file_path")[["file_path", "sha256"]]
    results: dict[str, phash.FileHash] = {}
    to_hash: dict[str, Path] = {}
    for relative, sha256 in files.itertuples(index=False):
        path = _resolve(data_root, relative)
        if path is None:
            results[relative] = phash.FileHash(str(relative), "", 0, 0, 0, 0, 0, "file_path outside the data root")
            continue
        cached = _cached_hash(cache, sha256, path)
        if cached is None:
            to_hash[relative] = path
        else:
            results[relative] = cached
    fresh = phash.hash_files(list(to_hash.values()), workers=workers)
    results.update(zip(to_hash.keys(), fresh))

    rows = inputs.copy()
    per_file = [results[r] for r in rows["file_path"]]
    rows["content_sha256"] = pd.Series([h.sha256 for h in per_file], index=rows.index, dtype=object)
    rows["phash"] = np.array([h.phash for h in per_file], dtype=np.uint64)
    rows["phash_mirror"] = np.array([h.phash_mirror for h in per_file], dtype=np.uint64)
    rows["thumb"] = pd.Series([h.thumb for h in per_file], index=rows.index, dtype=object)
    for column, attribute in (("px_width", "width"), ("px_height", "height"), ("n_bytes", "n_bytes")):
        rows[column] = np.array([getattr(h, attribute) for h in per_file], dtype=np.int64)
    problems = [_problem(h, expected) for h, expected in zip(per_file, rows["sha256"])]
    rows["problem"] = pd.Series(problems, index=rows.index, dtype=object)

    new_cache = pd.concat([cache.reset_index(), phash.cache_frame(fresh)], ignore_index=True)
    new_cache = phash.typed_cache(new_cache.drop_duplicates("sha256", keep="last")[phash.CACHE_COLUMNS])
    return rows, new_cache, {"files_hashed": len(fresh), "files_from_cache": len(results) - len(fresh)}


def _problem(result: phash.FileHash, expected_sha256) -> str | None:
    if result.error:
        return result.error
    if isinstance(expected_sha256, str) and expected_sha256 and expected_sha256 != result.sha256:
        return f"sha256 mismatch: manifest says {expected_sha256[:12]}..., file is {result.sha256[:12]}... (changed or truncated)"
    return None


# --- 3. deduplication ------------------------------------------------------------------------------


def distinct_contents(valid: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct content; its representative is the first row in (brand, pin_id) order."""
    ordered = valid.sort_values(["brand", "pin_id", "input_id"])
    contents = ordered.drop_duplicates("content_sha256").reset_index(drop=True)
    contents["pixels"] = contents["px_width"].astype(np.int64) * contents["px_height"].astype(np.int64)
    return contents


def cluster_pairs(n: int, pairs: Pairs, coloured: np.ndarray) -> tuple[np.ndarray, int]:
    """Cluster labels from verified pairs; grey-to-colour pairs (nearest first) never join two colour clusters."""
    grey = coloured[pairs.i] != coloured[pairs.j]
    order = np.argsort(pairs.distance[grey], kind="stable")
    return cluster_labels_with_refusals(n, pairs.i[~grey], pairs.j[~grey], pairs.i[grey][order], pairs.j[grey][order], coloured)


def choose_kept(contents: pd.DataFrame) -> pd.DataFrame:
    """Each cluster's kept content: a colour copy over a black-and-white one (it carries more, and it is
    what separates colourways), then most pixels, then most bytes, then smallest sha256 (deterministic)."""
    if "coloured" not in contents:
        contents = contents.assign(coloured=True)
    ranked = contents.sort_values(["cluster", "coloured", "pixels", "n_bytes", "content_sha256"],
                                  ascending=[True, False, False, False, True])
    kept = ranked.drop_duplicates("cluster").copy()
    kept["image_id"] = [sha[:16] for sha in kept["content_sha256"]]
    return kept


def _match_distance(a: np.ndarray, b: np.ndarray, a_mirror: np.ndarray | None) -> np.ndarray:
    distance = hamming(a, b)
    return distance if a_mirror is None else np.minimum(distance, hamming(a_mirror, b))


def deduplicate(rows: pd.DataFrame, settings: DedupSettings) -> DedupResult:
    """Exact then near-duplicate merging of hashed input rows (see module docstring)."""
    valid = rows[rows["problem"].isna()]
    contents = distinct_contents(valid)
    hashes = contents["phash"].to_numpy(np.uint64)
    mirrors = contents["phash_mirror"].to_numpy(np.uint64) if settings.match_mirrors else None
    candidates = find_pairs(hashes, settings.threshold, mirrors=mirrors)
    pairs = verify_pairs(candidates, contents["thumb"].tolist(), settings)
    contents["coloured"] = phash.chroma_strength(phash.thumbs_from_bytes(contents["thumb"].tolist())) > phash.ACHROMATIC_CHROMA
    contents["cluster"], refused = cluster_pairs(len(contents), pairs, contents["coloured"].to_numpy(bool))
    kept = choose_kept(contents)

    cluster_of = dict(zip(contents["content_sha256"], contents["cluster"]))
    kept_by_cluster = kept.set_index("cluster")
    mapped = valid.copy()
    mapped["cluster"] = mapped["content_sha256"].map(cluster_of)
    kept_rows = kept_by_cluster.loc[mapped["cluster"]]
    mapped["image_id"] = kept_rows["image_id"].to_numpy()
    same_content = mapped["content_sha256"].to_numpy() == kept_rows["content_sha256"].to_numpy()
    is_representative = mapped["input_id"].to_numpy() == kept_rows["input_id"].to_numpy()
    mapped["reason"] = np.where(is_representative, "kept", np.where(same_content, "exact_duplicate", "near_duplicate"))
    mapped["distance"] = _match_distance(
        mapped["phash"].to_numpy(np.uint64), kept_rows["phash"].to_numpy(np.uint64),
        mapped["phash_mirror"].to_numpy(np.uint64) if settings.match_mirrors else None,
    )

    manifest = _manifest(mapped, kept)
    mapping = _mapping(rows, mapped)
    quarantine = rows.loc[rows["problem"].notna(), ["input_id", "brand", "pin_id", "file_path", "image_url", "sha256", "problem"]]
    quarantine = quarantine.rename(columns={"problem": "reason"}).reset_index(drop=True)
    stats = _stats(rows, mapping, manifest, contents, settings)
    stats["candidate_pairs"], stats["pairs_rejected_by_colour"] = len(candidates), len(candidates) - len(pairs)
    stats["grey_links_refused"] = refused  # a greyscale copy matching two colourways joins only one
    return DedupResult(manifest, mapping, quarantine, pairs, contents, stats)


def verify_pairs(candidates: Pairs, thumbs: list, settings: DedupSettings) -> Pairs:
    """Keep the pHash candidates whose colour thumbnails agree too (``phash.thumbnail_distance``)."""
    if settings.max_thumb_distance is None or len(candidates) == 0:
        return candidates
    stack = phash.thumbs_from_bytes(thumbs)
    distance = phash.thumbnail_distance(stack[candidates.i], stack[candidates.j], mirror_b=settings.match_mirrors)
    agree = distance <= settings.max_thumb_distance
    return Pairs(candidates.i[agree], candidates.j[agree], candidates.distance[agree])


def _manifest(mapped: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    provenance = mapped.groupby("image_id").agg(
        brands=("brand", lambda s: sorted(set(s))),
        pin_ids=("pin_id", lambda s: sorted(set(s))),
        cluster_size=("input_id", "size"),
        n_variants=("content_sha256", "nunique"),
    )
    manifest = kept.set_index("image_id")[["file_path", "content_sha256", "px_width", "px_height", "n_bytes", "phash"]]
    manifest = manifest.rename(columns={"content_sha256": "sha256", "px_width": "width", "px_height": "height"})
    manifest = manifest.join(provenance).reset_index().sort_values("image_id", ignore_index=True)
    manifest["phash"] = manifest["phash"].astype(np.uint64)
    return manifest[["image_id", "file_path", "sha256", "width", "height", "brands", "pin_ids",
                     "cluster_size", "n_variants", "n_bytes", "phash"]]


def _mapping(rows: pd.DataFrame, mapped: pd.DataFrame) -> pd.DataFrame:
    mapping = rows[["input_id", "brand", "pin_id", "file_path", "sha256"]].copy()
    mapping = mapping.join(mapped.set_index("input_id")[["image_id", "reason", "distance"]], on="input_id")
    mapping["reason"] = mapping["reason"].fillna("quarantined")
    mapping["distance"] = mapping["distance"].astype("Int64")
    return mapping.sort_values("input_id", ignore_index=True)


def _stats(rows, mapping, manifest, contents, settings) -> dict:
    reasons = mapping["reason"].value_counts()
    cluster_sizes = manifest["n_variants"]
    return {
        "input_count": int(len(rows)),
        "unique_count": int(len(manifest)),
        "exact_duplicates": int(reasons.get("exact_duplicate", 0)),
        "near_duplicates": int(reasons.get("near_duplicate", 0)),
        "quarantined": int(reasons.get("quarantined", 0)),
        "distinct_contents": int(len(contents)),
        "clusters_with_duplicates": int((manifest["cluster_size"] > 1).sum()),
        "largest_cluster": int(manifest["cluster_size"].max()) if len(manifest) else 0,
        "near_duplicate_clusters": int((cluster_sizes > 1).sum()),
        "threshold": int(settings.threshold),
        "match_mirrors": bool(settings.match_mirrors),
        "max_thumb_distance": settings.max_thumb_distance,
    }


def brand_contribution(mapping: pd.DataFrame) -> pd.DataFrame:
    """Per brand: inputs, images it kept (as representative), duplicates, quarantined."""
    table = pd.crosstab(mapping["brand"], mapping["reason"]).reindex(columns=list(REASONS), fill_value=0)
    table.insert(0, "inputs", table.sum(axis=1))
    return table.reset_index()


# --- ground truth ------------------------------------------------------------------------------------


def load_ground_truth(path: Path) -> pd.DataFrame | None:
    """pin_id -> look_id (and copy_kind) from the embedded site's ground truth; None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    pins = payload.get("pins", payload) if isinstance(payload, dict) else {p["pin_id"]: p for p in payload}
    if not isinstance(pins, dict):
        raise ValueError(f"{path}: expected a 'pins' mapping of pin_id -> {{look_id, ...}}")
    records = [
        {"pin_id": str(pin_id), "look_id": info.get("look_id"), "copy_kind": info.get("copy_kind") or "original"}
        for pin_id, info in pins.items()
    ]
    return pd.DataFrame(records, columns=["pin_id", "look_id", "copy_kind"])


def _pair_count(sizes: pd.Series) -> int:
    sizes = sizes.to_numpy(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def evaluate_planted(mapping: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Planted duplicate pairs (pins sharing a look) vs pairs the dedup merged, over pins it could read."""
    rows = mapping[mapping["reason"] != "quarantined"].merge(truth, on="pin_id", how="inner")
    rows = rows[rows["look_id"].notna()]
    planted = _pair_count(rows.groupby("look_id").size())
    found = _pair_count(rows.groupby("image_id").size())
    true_pairs = _pair_count(rows.groupby(["look_id", "image_id"]).size())
    look_sizes = rows.groupby("look_id").size()
    # A copy counts only when another pin of its look was read too (its source may not be scraped).
    copies = rows[(rows["copy_kind"] != "original") & (rows["look_id"].map(look_sizes) > 1)]
    look_to_images = rows.groupby("look_id")["image_id"].nunique()
    per_kind = {}
    for kind, group in copies.groupby("copy_kind"):
        # A copy is found when its whole look collapsed into one kept image.
        per_kind[kind] = {"planted": int(len(group)), "found": int((look_to_images.loc[group["look_id"]] == 1).sum())}
    return {
        "pins_in_truth": int(len(rows)),
        "planted_pairs": planted,
        "found_pairs": found,
        "true_pairs": true_pairs,
        "recall": true_pairs / planted if planted else 1.0,
        "precision": true_pairs / found if found else 1.0,
        "by_copy_kind": per_kind,
    }


# --- reporting ------------------------------------------------------------------------------------------


def quarantine_reasons(quarantine: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows per kind of problem (the text before the first colon)."""
    kinds = quarantine["reason"].astype(str).str.split(":").str[0]
    return {kind: int(count) for kind, count in kinds.value_counts().items()}


def sample_pairs_markdown(result: DedupResult, data_root: Path, limit: int = 4, cell: int = 160) -> str:
    """Kept image and a duplicate side by side: the most distant near-duplicates first, then exact ones."""
    from fashion_pipeline.common.render import grid_markdown

    mapping = result.mapping
    duplicates = mapping[mapping["reason"].isin(["near_duplicate", "exact_duplicate"])]
    duplicates = duplicates.assign(near=duplicates["reason"] == "near_duplicate")
    duplicates = duplicates.sort_values(["near", "distance"], ascending=[False, False]).drop_duplicates("image_id")
    if duplicates.empty:
        return "_no duplicates found_"
    kept = result.manifest.set_index("image_id")
    blocks = []
    for row in duplicates.head(limit).itertuples():
        image = kept.loc[row.image_id]
        picture = grid_markdown([Path(data_root) / image["file_path"], Path(data_root) / row.file_path], ncols=2, cell=cell, alt=row.image_id)
        caption = (f"**{row.reason}**, {row.distance} bits: kept {image['width']}x{image['height']} "
                   f"({', '.join(image['brands'])}) | copy {row.brand} pin {row.pin_id}")
        blocks.append(f"{picture}\n\n{caption}")
    return "\n\n".join(blocks)


# --- 4. outputs ----------------------------------------------------------------------------------------


def write_outputs(result: DedupResult, out_dir: Path, cache: pd.DataFrame) -> dict[str, Path]:
    """The build's files in ``out_dir`` (a staging folder); ``cache``: the hash cache, of which the kept
    images' rows are stored as ``signatures.parquet`` so the folder's check never reads the shared cache."""
    out_dir = Path(out_dir)
    kept = cache[cache["sha256"].isin(result.manifest["sha256"])]
    paths = {
        "manifest": write_parquet(out_dir / OUTPUT_FILES["manifest"], result.manifest),
        "mapping": write_parquet(out_dir / OUTPUT_FILES["mapping"], result.mapping),
        "quarantine": write_parquet(out_dir / OUTPUT_FILES["quarantine"], result.quarantine),
        "signatures": write_parquet(out_dir / SIGNATURES_FILE, kept.reset_index(drop=True)),
    }
    paths["summary"] = write_json(out_dir / OUTPUT_FILES["summary"], result.stats, indent=1)
    return paths


def output_paths(folder: Path) -> dict[str, Path]:
    return {name: Path(folder) / file for name, file in OUTPUT_FILES.items()}


def cache_path(data_root: Path) -> Path:
    return versions.home(data_root, OUTPUT_ASSET) / CACHE_FILE


def load_result(folder: Path) -> DedupResult:
    """A published build read back (a reused folder): the tables and stats; no pairs or contents."""
    paths = output_paths(folder)
    empty = np.zeros(0, dtype=np.int64)
    return DedupResult(pd.read_parquet(paths["manifest"]), pd.read_parquet(paths["mapping"]),
                       pd.read_parquet(paths["quarantine"]), Pairs(empty, empty, empty), pd.DataFrame(),
                       json.loads(paths["summary"].read_text()))


def input_key(data_root: Path, settings: DedupSettings, inputs: pd.DataFrame) -> str:
    """The output folder's name: what the build depends on. The merged rows (every manifest column read), each
    input file's size and mtime (a file truncated or replaced since download is quarantined, so it counts),
    the ground truth (planted stats), the settings that change the result (not ``workers``), the pHash
    algorithm and ``BUILD_VERSION``. Loading manifests and a stat per file: cheap next to hashing."""
    data_root = Path(data_root)
    rows = pd.util.hash_pandas_object(inputs[INPUT_COLUMNS + ["manifest"]].astype(str), index=False).to_numpy()
    stats = []
    for relative in inputs["file_path"].drop_duplicates():
        path = _resolve(data_root, relative)
        try:
            stat = os.stat(path) if path is not None else None
        except OSError:
            stat = None
        stats.append(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{relative}:absent")
    truth = data_root / GROUND_TRUTH
    settings_key = {k: v for k, v in asdict(settings).items() if k != "workers"}
    return versions.input_key(BUILD_VERSION, phash.ALGORITHM, settings_key, hashlib.sha256(rows.tobytes()).hexdigest(),
                              combine(stats), file_sha256(truth) if truth.is_file() else "no ground truth")


def build_dataset(data_root: Path, settings: DedupSettings | None = None,
                  manifests: list[Path | ManifestSlice] | None = None) -> tuple[DedupResult, dict]:
    """The whole stage: load, hash (cached), deduplicate, publish a folder. Returns the result and run info
    (``published``: the ``versions.Published`` folder, reused when nothing is new; ``paths``: its files)."""
    settings = settings or DedupSettings()
    data_root = Path(data_root)
    started = time.perf_counter()
    manifests = brand_manifests(data_root) if manifests is None else [
        m if isinstance(m, ManifestSlice) else Path(m) for m in manifests]
    inputs = load_inputs(data_root, manifests)
    key = input_key(data_root, settings, inputs)
    published = versions.find(data_root, OUTPUT_ASSET, version=key)
    if published is not None:  # the same rows, files and settings as an earlier build: nothing hashed or written
        result = load_result(published.folder)
        result.stats.update(files_hashed=0, files_from_cache=0, hash_seconds=0.0,
                            seconds=round(time.perf_counter() - started, 3))
    else:
        result, cache = _build(data_root, settings, inputs, started)
        write_parquet(cache_path(data_root), cache)  # a cache: replaced atomically, shared, named by no record
        with versions.staging(data_root, OUTPUT_ASSET) as out:  # removed if writing fails
            write_outputs(result, out.dir, cache)
            published = out.publish(key)
    return result, {"paths": output_paths(published.folder), "published": published,
                    "manifests": [str(getattr(m, "path", m)) for m in manifests]}


def _build(data_root: Path, settings: DedupSettings, inputs: pd.DataFrame, started: float) -> tuple[DedupResult, pd.DataFrame]:
    rows, cache, hash_counts = hash_inputs(inputs, data_root, cache_path(data_root), settings.workers)
    hashed = time.perf_counter()
    result = deduplicate(rows, settings)
    truth = load_ground_truth(data_root / GROUND_TRUTH)
    if truth is not None:
        result.stats["planted"] = evaluate_planted(result.mapping, truth)
    result.stats.update(hash_counts)
    result.stats["hash_seconds"] = round(hashed - started, 3)
    result.stats["seconds"] = round(time.perf_counter() - started, 3)
    result.stats["settings"] = asdict(settings)
    return result, cache


# --- checks (run by the asset checks; plain so tests can call them) --------------------------------------


def check_no_near_duplicates(out_dir: Path) -> tuple[bool, dict]:
    """No two kept images are within the threshold (or share a sha256), in the build folder ``out_dir``."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text())
    manifest = pd.read_parquet(out_dir / "manifest.parquet")
    hashes = manifest["phash"].to_numpy(np.uint64)
    settings = DedupSettings(int(summary["threshold"]), bool(summary.get("match_mirrors")),
                             max_thumb_distance=summary.get("max_thumb_distance"))
    cache = phash.load_cache(out_dir / SIGNATURES_FILE)
    signatures = cache.reindex(manifest["sha256"])
    if len(manifest) and signatures["phash"].isna().any():
        return False, {"kept_images": int(len(manifest)), "pairs_within_threshold": -1, "repeated_sha256": -1,
                       "threshold": settings.threshold, "examples": [f"kept images missing from {SIGNATURES_FILE}"]}
    mirrors = signatures["phash_mirror"].to_numpy(np.uint64) if settings.match_mirrors else None
    pairs = verify_pairs(find_pairs(hashes, settings.threshold, mirrors=mirrors), signatures["thumb"].tolist(), settings)
    repeated_sha = int(manifest["sha256"].duplicated().sum())
    examples = [f"{manifest.image_id[a]} ~ {manifest.image_id[b]} ({d} bits)" for a, b, d in zip(pairs.i[:5], pairs.j[:5], pairs.distance[:5])]
    details = {"kept_images": int(len(manifest)), "pairs_within_threshold": int(len(pairs)),
               "repeated_sha256": repeated_sha, "threshold": int(summary["threshold"]), "examples": examples}
    return len(pairs) == 0 and repeated_sha == 0, details


def check_inputs_accounted(data_root: Path, out_dir: Path,
                           manifests: list[Path | ManifestSlice] | None = None) -> tuple[bool, dict]:
    """Every current input row is in the mapping of the build folder ``out_dir``: kept, mapped to a kept
    image, or quarantined."""
    data_root, out_dir = Path(data_root), Path(out_dir)
    inputs = load_inputs(data_root, manifests)
    mapping = pd.read_parquet(out_dir / "mapping.parquet")
    manifest = pd.read_parquet(out_dir / "manifest.parquet")
    quarantine = pd.read_parquet(out_dir / "quarantine.parquet")
    key = ["brand", "pin_id", "file_path"]
    joined = inputs[key].merge(mapping, on=key, how="left", indicator=True)
    unmapped = joined[joined["_merge"] == "left_only"]
    placed = joined[joined["reason"].isin(["kept", "exact_duplicate", "near_duplicate"])]
    dangling = placed[~placed["image_id"].isin(manifest["image_id"])]
    quarantined = joined[joined["reason"] == "quarantined"]
    unexplained = quarantined[~quarantined["input_id"].isin(quarantine["input_id"])]
    unknown_reason = joined[(joined["_merge"] == "both") & ~joined["reason"].isin(REASONS)]
    details = {
        "inputs": int(len(inputs)),
        "unmapped": int(len(unmapped)),
        "mapped_to_missing_image": int(len(dangling)),
        "quarantined_without_reason": int(len(unexplained)),
        "unknown_reason": int(len(unknown_reason)),
        "examples": [f"{r.brand}/{r.pin_id}: {r.file_path}" for r in unmapped.head(5).itertuples()],
    }
    passed = not (len(unmapped) or len(dangling) or len(unexplained) or len(unknown_reason))
    return passed, details


def main(argv: list[str] | None = None) -> int:
    from fashion_pipeline.common.paths import resolve_data_root

    parser = argparse.ArgumentParser(description="Deduplicate the scraped Pinterest images into pinterest_dataset/v/<key>/.")
    parser.add_argument("--data-root", default=None, help="data root (default: $FASHION_PIPELINE_DATA or ./data)")
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="Hamming threshold in bits (of 64)")
    parser.add_argument("--match-mirrors", action="store_true", help="also merge left-right mirrored copies")
    parser.add_argument("--workers", type=int, default=None, help="hashing processes (default: all cores)")
    parser.add_argument("--max-thumb-distance", type=float, default=DEFAULT_MAX_THUMB_DISTANCE,
                        help="colour check on pHash pairs; negative disables it")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    thumb = None if args.max_thumb_distance < 0 else args.max_thumb_distance
    result, info = build_dataset(root, DedupSettings(args.threshold, args.match_mirrors, args.workers, thumb))
    print(json.dumps(result.stats, indent=1, default=str))
    published = info["published"]
    print(f"{'reused' if published.reused else 'wrote'} {info['paths']['manifest']}")
    ok_pairs, _ = check_no_near_duplicates(published.folder)
    ok_inputs, _ = check_inputs_accounted(root, published.folder)
    return 0 if ok_pairs and ok_inputs else 1


if __name__ == "__main__":
    raise SystemExit(main())
