"""Dagster layer of the try-on stage: paired try-on data (synthetic, or a real set in the VITON-HD layout) -> report.

The domain logic is in ``synthetic.tryon`` (the generator), ``layout`` (reader and validation), ``warp``,
``baselines``, ``metrics`` and ``report`` (plain modules with CLIs). Every materialization publishes a folder of its
own, ``<asset>/v/<input key>/`` (``common.versions``: written in a staging folder, renamed in one step), and
records it (relative to the data root); the report reads the folder ``tryon_pairs`` recorded, never a fixed path,
so a crashed or concurrent run cannot mix two versions, and a rerun with the same inputs reuses its folder.
Torch is imported inside the report asset only.
"""

import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
from PIL import Image, ImageDraw

from fashion_pipeline.common import atomic, lineage, render, versions
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.synthetic import tryon as synthetic_tryon
from fashion_pipeline.synthetic.parse import colourize
from fashion_pipeline.tryon import layout

GROUP = "tryon"
PAIRS_CHECK = "tryon_pairs_valid"
ORDER_CHECK = "baselines_in_order"
PAIRS_CODE_VERSION = "1"
REPORT_CODE_VERSION = "1"
SPLITS = layout.SPLITS


# ---------------------------------------------------------------- tryon_pairs

class TryonPairsConfig(dg.Config):
    root: str = ""  # a dataset in the VITON-HD layout; "" -> $TRYON_ROOT; neither -> the synthetic generator
    height: int = 256  # width = 3/4 of it (VITON-HD and CP-VTON are 4:3)
    train: int = 400  # synthetic persons per split
    test: int = 200
    seed: int = 0
    max_bad_share: float = 0.02  # the check fails when more of a split's pairs than this are unusable
    validate_max: int = 0  # pairs read per split by the check (0: all); a real train split has ~11k
    grid_rows: int = 6


def _pose_tile(points: np.ndarray, height: int, width: int) -> np.ndarray:
    limbs = [(1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
             (13, 14), (0, 1), (0, 15), (0, 16), (15, 17), (16, 18)]
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for a, b in limbs:
        if points[a, 2] > 0 and points[b, 2] > 0:
            draw.line([tuple(points[a, :2]), tuple(points[b, :2])], fill=(255, 200, 0), width=2)
    for x, y, confidence in points:
        if confidence > 0:
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(255, 60, 60))
    return np.asarray(image)


def pairs_grid(reader: layout.Layout, pairs: list[layout.Pair], rows: int) -> Image.Image:
    """person | garment | parse | pose | ground truth, one row per readable pair."""
    tiles = []
    for pair in pairs:
        if len(tiles) == rows:
            break
        try:
            sample = reader.load(pair)
        except layout.LayoutError:
            continue  # counted by the check
        truth = sample.truth if sample.truth is not None else np.zeros_like(sample.person)
        tiles.append(np.concatenate([sample.person, sample.cloth, colourize(sample.parse),
                                     _pose_tile(sample.keypoints, reader.height, reader.width), truth], axis=1))
    return Image.fromarray(np.concatenate(tiles, axis=0))


def _dataset_version(root: Path, synthetic: bool) -> str:
    """Content of every file (the generated set is small), or, for a real set, its pairs files and file sizes."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if synthetic:
        return combine(f"{p.relative_to(root)}:{file_sha256(p)}" for p in files)
    parts = [file_sha256(layout.pairs_file(root, split)) for split in SPLITS if layout.pairs_file(root, split).is_file()]
    return combine(parts + [f"{p.relative_to(root)}:{p.stat().st_size}" for p in files])


def _validate_splits(root: Path, config: TryonPairsConfig, width: int) -> dict:
    result = {}
    for split in SPLITS:
        reader = layout.Layout(root, split, config.height, width)
        try:
            pairs = layout.read_pairs(root, split)
        except layout.LayoutError as error:
            result[split] = {"pairs": 0, "usable": 0, "by_reason": {error.reason: 1}, "problems": [str(error)]}
            continue
        checked = pairs[: config.validate_max] if config.validate_max else pairs
        validation = layout.validate(reader, checked)
        result[split] = {"pairs": len(pairs), "checked": len(checked), "usable": validation.usable,
                         "bad_share": round(validation.bad_share, 4), "by_reason": validation.by_reason,
                         "problems": [message for _, _, message in validation.problems]}
    return result


def _given_root(config: TryonPairsConfig) -> Path | None:
    given = config.root or os.environ.get(layout.ROOT_ENV_VAR, "")
    if not given:
        return None
    root = Path(given).expanduser().resolve()
    if not root.is_dir():
        raise lineage.input_failure(f"try-on dataset root {root} (from {'config' if config.root else 'TRYON_ROOT'}) "
                                    "is not a folder")
    return root


def _build_pairs(out: versions.Staging, real_root: Path | None, config: TryonPairsConfig, width: int) -> dict:
    """Everything one version holds: the generated set (or nothing, for a real set), validation.json, grid.png."""
    root = real_root or out.path("dataset")
    summary = {} if real_root else synthetic_tryon.write_dataset(root, synthetic_tryon.Spec(
        config.height, width, config.train, config.test, config.seed))
    validation = _validate_splits(root, config, width)
    atomic.write_json(out.path("validation.json"), {"validation": validation, "summary": summary}, indent=1)
    if validation["test"]["usable"]:
        grid = pairs_grid(layout.Layout(root, "test", config.height, width), layout.read_pairs(root, "test"),
                          config.grid_rows)
        atomic.write_bytes(out.path("grid.png"), render.png_bytes(grid))
    return validation


@dg.asset(group_name=GROUP, code_version=PAIRS_CODE_VERSION,
          check_specs=[dg.AssetCheckSpec(PAIRS_CHECK, asset="tryon_pairs", blocking=True,
                                         description="Every split reads, with at most max_bad_share unusable pairs.")])
def tryon_pairs(context: dg.AssetExecutionContext, config: TryonPairsConfig, data_root: DataRoot) -> dg.MaterializeResult:
    """Paired try-on data in the VITON-HD layout: generated with unpaired ground truth, or a real set
    (``root`` / ``TRYON_ROOT``) validated file by file. A rerun with the same inputs reuses its folder."""
    width = config.height * 3 // 4
    synthetic_tryon.check_size(config.height, width)
    real_root = _given_root(config)
    source_version = _dataset_version(real_root, synthetic=False) if real_root else "synthetic"
    key = versions.input_key(PAIRS_CODE_VERSION, str(real_root or ""), source_version, config.model_dump())
    published = versions.find(data_root.path, "tryon_pairs", version=key)
    if published is None:
        with versions.staging(data_root.path, "tryon_pairs") as out:  # removed if anything below raises
            _build_pairs(out, real_root, config, width)
            published = out.publish(key)
    stored = json.loads(published.file("validation.json").read_text())
    validation, summary = stored["validation"], stored["summary"]
    root = real_root or published.file("dataset")
    version = _dataset_version(root, synthetic=True) if real_root is None else source_version
    metadata = {
        "source": "directory" if real_root else "synthetic",
        "dataset_root": str(real_root) if real_root else published.relative_file("dataset"),
        "folder": dg.MetadataValue.path(published.relative), "reused": published.reused,
        "height": config.height, "width": width,
        "setting": "paired only (no unpaired ground truth)" if real_root else "unpaired with ground truth",
        **{f"{split}_pairs": validation[split]["pairs"] for split in SPLITS},
        **{f"{split}_usable": validation[split]["usable"] for split in SPLITS},
        "problems_by_reason": dg.MetadataValue.json({split: validation[split]["by_reason"] for split in SPLITS}),
        "validation": dg.MetadataValue.path(published.relative_file("validation.json")),
    }
    if summary:
        metadata.update(garment_styles=dg.MetadataValue.json(summary["styles"]),
                        garment_patterns=dg.MetadataValue.json(summary["kinds"]))
    if published.file("grid.png").is_file():
        metadata["grid"] = dg.MetadataValue.md(render.inline_image_markdown(
            Image.open(published.file("grid.png")), alt="person | garment | parse | pose | truth"))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version),
                                check_results=[_pairs_check(validation, config)])


def _pairs_check(validation: dict, config: TryonPairsConfig) -> dg.AssetCheckResult:
    shares = {split: (1.0 if not validation[split]["pairs"] else validation[split]["bad_share"]) for split in SPLITS}
    passed = all(share <= config.max_bad_share for share in shares.values())
    first = next((v["problems"][0] for v in validation.values() if v["problems"]), "")
    return dg.AssetCheckResult(check_name=PAIRS_CHECK, passed=passed,
                               metadata={**{f"{s}_bad_share": shares[s] for s in SPLITS},
                                         "by_reason": dg.MetadataValue.json({s: validation[s]["by_reason"] for s in SPLITS}),
                                         "first_problem": first[:500]})


# ---------------------------------------------------------------- tryon_report

class TryonReportConfig(dg.Config):
    methods: list[str] = ["unchanged", "warped_paste", "oracle_paste"]  # any registered in tryon.baselines.METHODS
    max_pairs: int = 0  # 0: every test pair
    features: str = "detector"  # "detector": best_detector's backbone; "untrained": a seeded ResNet-18 (labelled)
    kid_subsets: int = 100
    # Real LPIPS only from local files (nothing is downloaded): a torchvision alexnet state dict and the lpips
    # package's weights/v0.1/alex.pth heads. Both empty: no LPIPS column.
    lpips_alexnet_weights: str = ""
    lpips_linear_weights: str = ""
    # trained methods (tryon_model partitions) to add when materialized; viton adds viton_warp (issue 22)
    models: list[str] = ["viton", "encoder_decoder", "cagan"]


@dg.asset(group_name=GROUP, deps=["tryon_pairs", "best_detector", "tryon_model"], code_version=REPORT_CODE_VERSION, kinds={"pytorch"},
          check_specs=[dg.AssetCheckSpec(ORDER_CHECK, asset="tryon_report", blocking=False,
                                         description="On ground truth: oracle_paste > warped_paste > unchanged in SSIM.")])
def tryon_report(context: dg.AssetExecutionContext, config: TryonReportConfig, data_root: DataRoot,
                 compute: ComputeDevice) -> dg.MaterializeResult:
    """Every method's output on every test pair (PNGs + manifest), scored against the ground truth:
    SSIM (whole, changed region), L1, a detector-feature distance (not LPIPS), KID/FID, with 95% intervals."""
    import torch

    from fashion_pipeline.tryon import baselines, report

    pairs = lineage.require_latest(context.instance, "tryon_pairs")
    lineage.require_checks_passed(context.instance, "tryon_pairs", (PAIRS_CHECK,))
    from fashion_pipeline.tryon import model_assets  # issue 22: the trained models' methods

    model_methods, model_versions = model_assets.register_recorded(context, config.models, data_root, pairs)
    methods = [*config.methods, *(name for name in model_methods if name not in config.methods)]
    unknown = [name for name in methods if name not in baselines.METHODS]
    if unknown:
        raise lineage.input_failure(f"unknown try-on methods {unknown}; registered: {sorted(baselines.METHODS)}")
    stored = str(pairs.require("dataset_root"))
    root = Path(stored) if Path(stored).is_absolute() else data_root.path / stored
    reader = layout.Layout(root, "test", int(pairs.require("height")), int(pairs.require("width")))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    device = compute.torch_device()
    distance = report.feature_distance(_detector_checkpoint(context, config, data_root), device)
    best = lineage.latest(context.instance, "best_detector") if config.features == "detector" else None
    key = versions.input_key(REPORT_CODE_VERSION, pairs.data_version, best.data_version if best else "",
                             config.model_dump(), model_versions)
    published = versions.find(data_root.path, "tryon_report", version=key)
    if published is None:
        lpips = None
        if config.lpips_alexnet_weights or config.lpips_linear_weights:
            from fashion_pipeline.tryon.metrics import LPIPS

            lpips = LPIPS(config.lpips_alexnet_weights, config.lpips_linear_weights, device)
        with versions.staging(data_root.path, "tryon_report") as out:
            report.write_report(reader, report.ReportSettings(tuple(methods), config.max_pairs,
                                                              config.kid_subsets), out.dir, distance, lpips)
            if model_methods:
                model_assets.write_comparison(reader, out.dir, model_methods)
            published = out.publish(key)
    summary = json.loads(published.file("report.json").read_text())
    stable = json.dumps({k: v for k, v in summary.items() if k != "seconds"}, sort_keys=True, default=str)
    return dg.MaterializeResult(
        metadata={**_report_metadata(summary, published.folder, data_root, pairs), "reused": published.reused,
                  **model_assets.comparison_metadata(published.folder)},
        data_version=dg.DataVersion(combine([pairs.data_version or "", stable])),
        check_results=[_order_check(summary)])


def _detector_checkpoint(context, config: TryonReportConfig, data_root: DataRoot) -> str | None:
    if config.features == "untrained":
        return None
    if config.features != "detector":
        raise lineage.input_failure(f"features must be 'detector' or 'untrained', got {config.features!r}")
    best = lineage.latest(context.instance, "best_detector")
    if best is None:
        raise lineage.input_failure("tryon_report scores features in the trained detector's space: materialize "
                                    "best_detector first, or set features: untrained")
    return str(best.path(data_root.path, "checkpoint"))


def _report_metadata(summary: dict, folder: Path, data_root: DataRoot, pairs: lineage.Recorded) -> dict:
    from fashion_pipeline.tryon import report

    metadata = {"setting": summary["setting"], "pairs": summary["pairs"], "seconds": summary["seconds"],
                "folder": dg.MetadataValue.path(lineage.relative(folder, data_root.path)),
                "manifest": dg.MetadataValue.path(lineage.relative(folder / "manifest.parquet", data_root.path)),
                "tryon_pairs_version": pairs.data_version or "",
                "table": dg.MetadataValue.md(report.table(summary["methods"])),
                "feature_space": summary["feature_space"], "feature_distance": summary["feature_distance"],
                "grid": dg.MetadataValue.md(render.inline_image_markdown(Image.open(folder / "grid.png"),
                                                                         alt="person | garment | methods | truth"))}
    for name, entry in summary["methods"].items():
        metadata[f"{name}_ssim"] = round(entry["ssim"]["mean"], 4)
        metadata[f"{name}_kid"] = round(entry["kid"], 5)
    return metadata


def _order_check(summary: dict) -> dg.AssetCheckResult:
    methods = summary["methods"]
    needed = ("oracle_paste", "warped_paste", "unchanged")
    if not all(name in methods for name in needed):
        return dg.AssetCheckResult(check_name=ORDER_CHECK, passed=True,
                                   metadata={"note": "not all three baselines ran (e.g. no oracle on a real set)"})
    ssim = {name: methods[name]["ssim"]["mean"] for name in needed}
    return dg.AssetCheckResult(check_name=ORDER_CHECK, passed=bool(ssim["oracle_paste"] > ssim["warped_paste"] > ssim["unchanged"]),
                               metadata={f"{name}_ssim": round(value, 4) for name, value in ssim.items()})


def _model_assets():
    from fashion_pipeline.tryon import model_assets

    return model_assets


defs = dg.Definitions(assets=[tryon_pairs, _model_assets().tryon_model, tryon_report])


def resources() -> dict:
    """``data_root`` and ``compute``, and the Pipes client that launches tryon_model's trainer."""
    return {"pipes_subprocess_client": dg.PipesSubprocessClient()}


# `make demo`: 400 train and 200 test persons at 128x96 (measured in the README); the report scores every test pair.
DEMO_RUN_CONFIG = {
    "ops": {
        "tryon_pairs": {"config": {"height": 128, "train": 400, "test": 200}},
        "tryon_model": {"config": _model_assets().DEMO_TRAIN},
        "tryon_report": {"config": {"max_pairs": 0}},
    }
}
