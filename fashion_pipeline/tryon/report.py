"""Score try-on methods on a dataset's test pairs; write every output, its truth, a manifest and the table.

For each test pair and each method (``baselines.METHODS``: the baselines, and whatever the model issue
registers), the output and the ground truth are written as PNGs (lossless, so the scores can be recomputed
from them) and listed in ``manifest.parquet`` (pair, person, cloth, method, output_path, truth_path, and the
per-pair scores). Paths in the manifest are relative to the report's folder.

Synthetic sets have unpaired ground truth. Real sets (VITON-HD) do not: the report then scores the paired
setting (each person with the garment they wear, whose truth is the person's own picture) and says so.

``python -m fashion_pipeline.tryon.report --root /tmp/tryon --out /tmp/tryon_report --height 128``
"""
from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fashion_pipeline.common import atomic, render
from fashion_pipeline.synthetic.parse import UPPER_GARMENT_IDS
from fashion_pipeline.tryon import baselines, metrics
from fashion_pipeline.tryon.layout import Layout, Pair, read_pairs

UNPAIRED = "unpaired (synthetic ground truth: the same person drawn in the other garment)"
PAIRED = "paired (each person with the garment they wear; a real set has no unpaired ground truth)"


@dataclass(frozen=True)
class ReportSettings:
    methods: tuple[str, ...] = baselines.BASELINES
    max_pairs: int = 0  # 0: every test pair
    kid_subsets: int = 100
    grid_rows: int = 6


def evaluation_pairs(layout: Layout, pairs: list[Pair]) -> tuple[list[Pair], str]:
    """The pairs to score and the setting: unpaired when every pair has its truth, else the paired setting."""
    if pairs and all(layout.truth_files(pair) is not None for pair in pairs):
        return pairs, UNPAIRED
    seen, paired = set(), []
    for pair in pairs:
        if pair.person not in seen:
            seen.add(pair.person)
            paired.append(Pair(pair.split, pair.person, pair.person, pair.line))
    return paired, PAIRED


def _png(path: Path, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())


@dataclass
class Outputs:
    rows: list[dict] = field(default_factory=list)
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)  # method -> outputs in pair order
    truths: list[np.ndarray] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    grid_rows: list[list[np.ndarray]] = field(default_factory=list)


def run_methods(layout: Layout, pairs: list[Pair], settings: ReportSettings, out_dir: Path) -> Outputs:
    """Every method on every pair: PNGs, per-pair SSIM / SSIM in the changed region / L1 and extras."""
    result = Outputs(images={name: [] for name in settings.methods})
    methods = [baselines.METHODS[name] for name in settings.methods]
    for pair in pairs:
        sample = layout.load(pair)
        truth_path = Path("truth") / f"{pair.name}.png"
        _png(out_dir / truth_path, sample.truth)
        region = metrics.changed_region(sample.parse, sample.truth_parse, UPPER_GARMENT_IDS)
        result.truths.append(sample.truth)
        tiles = [sample.person, sample.cloth]
        for method in methods:
            if method.name in result.unavailable:
                continue
            try:
                output, extras = method.run(sample)
            except baselines.MethodUnavailable as why:
                result.unavailable[method.name] = str(why)
                continue
            output_path = Path("outputs") / method.name / f"{pair.name}.png"
            _png(out_dir / output_path, output)
            result.images[method.name].append(output)
            tiles.append(output)
            result.rows.append({"pair": pair.name, "person": pair.person, "cloth": pair.cloth, "method": method.name,
                                "output_path": str(output_path), "truth_path": str(truth_path),
                                "ssim": metrics.ssim(output, sample.truth),
                                "ssim_changed": metrics.ssim(output, sample.truth, region),
                                "l1": metrics.l1(output, sample.truth),
                                "changed_fraction": float(region.mean()), **extras})
        if len(result.grid_rows) < settings.grid_rows:
            result.grid_rows.append(tiles + [sample.truth])
    for name in result.unavailable:
        result.images.pop(name, None)
    return result


def feature_scores(outputs: Outputs, frame: pd.DataFrame, distance: metrics.FeatureDistance,
                   subsets: int, lpips: metrics.LPIPS | None = None) -> tuple[pd.DataFrame, dict]:
    """Adds the per-pair feature distance; returns KID (mean, std) and FID per method against the truths,
    both from one pass of the network per picture (its pooled last stage is the KID/FID feature)."""
    from fashion_pipeline.gan import quality

    truth_maps, truth_features = distance.encode(np.stack(outputs.truths))
    frame = frame.copy()
    frame["feature_distance"] = np.nan
    distribution = {}
    for name, images in outputs.images.items():
        maps, features = distance.encode(np.stack(images))
        frame.loc[frame["method"] == name, "feature_distance"] = distance.between(maps, truth_maps)
        if lpips is not None:
            frame.loc[frame["method"] == name, "lpips"] = lpips(np.stack(images), np.stack(outputs.truths))
        kid, kid_std = quality.kernel_inception_distance(features, truth_features, subsets=subsets,
                                                         subset_size=len(images) // 2)
        distribution[name] = {"kid": kid, "kid_std": kid_std, "fid": quality.fid_from_features(features, truth_features)}
    return frame, distribution


SCORES = (("ssim", "SSIM ↑"), ("ssim_changed", "SSIM changed region ↑"), ("l1", "L1 ↓"),
          ("feature_distance", "feature distance ↓"), ("lpips", "LPIPS ↓"))


def summarize(frame: pd.DataFrame, distribution: dict, methods: list[str]) -> dict:
    summary = {}
    for name in methods:
        rows = frame[frame["method"] == name]
        entry = {column: metrics.mean_ci(rows[column].tolist()).as_dict() for column, _ in SCORES if column in rows}
        if "warp_error_px" in rows and rows["warp_error_px"].notna().any():
            entry["warp_error_px"] = metrics.mean_ci(rows["warp_error_px"].dropna().tolist()).as_dict()
        entry.update(distribution.get(name, {}))
        summary[name] = entry
    return summary


def _ci(entry: dict | None) -> str:
    if not entry or entry["n"] == 0:
        return ""
    return f"{entry['mean']:.4f} ± {(entry['ci95_high'] - entry['ci95_low']) / 2:.4f}"


def table(summary: dict) -> str:
    shown = [(column, label) for column, label in SCORES if any(column in entry for entry in summary.values())]
    headers = ["method", *(label for _, label in shown), "KID ↓ (± std)", "FID ↓", "warp error px ↓"]
    rows = []
    for name, entry in summary.items():
        kid = f"{entry['kid']:.4f} ± {entry['kid_std']:.4f}" if "kid" in entry else ""
        fid = f"{entry['fid']:.2f}" if "fid" in entry else ""
        rows.append([name, *(_ci(entry.get(column)) for column, _ in shown), kid, fid, _ci(entry.get("warp_error_px"))])
    return render.markdown_table(headers, rows)


def grid(outputs: Outputs, methods: list[str]) -> Image.Image:
    """person | product | each method | truth, one row per pair."""
    rows = [np.concatenate(tiles, axis=1) for tiles in outputs.grid_rows]
    picture = Image.fromarray(np.concatenate(rows, axis=0))
    header = ["person", "garment", *methods, "truth"]
    return _label_columns(picture, header, outputs.grid_rows[0][0].shape[1])


def _label_columns(picture: Image.Image, names: list[str], cell_width: int) -> Image.Image:
    from PIL import ImageDraw

    band = 12
    out = Image.new("RGB", (picture.width, picture.height + band), (255, 255, 255))
    out.paste(picture, (0, band))
    draw = ImageDraw.Draw(out)
    for index, name in enumerate(names):
        draw.text((index * cell_width + 2, 0), name[:16], fill=(0, 0, 0))
    return out


def write_report(layout: Layout, settings: ReportSettings, out_dir: Path, distance: metrics.FeatureDistance,
                 lpips: metrics.LPIPS | None = None) -> dict:
    """The whole report under ``out_dir``; returns its summary (also written as report.json)."""
    started = time.perf_counter()
    pairs, setting = evaluation_pairs(layout, read_pairs(layout.root, layout.split))
    if settings.max_pairs:
        pairs = pairs[: settings.max_pairs]
    if len(pairs) < 4:
        raise ValueError(f"{layout.root}: {len(pairs)} test pairs; KID needs at least 4")
    outputs = run_methods(layout, pairs, settings, out_dir)
    methods = [name for name in settings.methods if name not in outputs.unavailable]
    frame, distribution = feature_scores(outputs, pd.DataFrame(outputs.rows), distance, settings.kid_subsets, lpips)
    atomic.write_parquet(out_dir / "manifest.parquet", frame)
    summary = summarize(frame, distribution, methods)
    grid_image = grid(outputs, methods)
    _png(out_dir / "grid.png", np.asarray(grid_image))
    report = {"setting": setting, "pairs": len(pairs), "size": [layout.height, layout.width], "methods": summary,
              "unavailable": outputs.unavailable,
              "feature_space": f"{distance.description}; KID/FID on its pooled last stage",
              "fid_note": f"FID from {len(pairs)} pictures per set: biased upwards when that is under the feature "
                          "dimension; read KID",
              "feature_distance": distance.description,
              "lpips": lpips.description if lpips is not None else "not computed (no local LPIPS weight files configured)", "seconds": round(time.perf_counter() - started, 1),
              "descriptions": {name: baselines.METHODS[name].description for name in methods}}
    atomic.write_json(out_dir / "report.json", report, indent=2)
    atomic.write_text(out_dir / "report.md", markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = [f"# Try-on report: {report['pairs']} test pairs at {report['size'][0]}x{report['size'][1]}", "",
             f"Setting: {report['setting']}.", "",
             "Means with 95% confidence intervals (Student's t over the pairs); KID ± its spread over subsets.", "",
             table(report["methods"]), "",
             f"- KID/FID features: {report['feature_space']}.",
             f"- Feature distance: {report['feature_distance']}.", f"- LPIPS: {report['lpips']}.",
             f"- {report['fid_note']}.",
             "- SSIM: 11-tap Gaussian window, sigma 1.5; changed region = either garment, and wherever the parse "
             "differs between the input and the truth."]
    lines += [f"- `{name}`: {text}" for name, text in report["descriptions"].items()]
    lines += [f"- `{name}` not run: {why}" for name, why in report["unavailable"].items()]
    return "\n".join(lines) + "\n"


def feature_distance(detector_checkpoint: str | None, device) -> metrics.FeatureDistance:
    """The trained detector's backbone when given, else a seeded untrained ResNet-18 (labelled as such)."""
    if detector_checkpoint:
        return metrics.detector_distance(detector_checkpoint, device)
    return metrics.FeatureDistance(metrics.resnet_stages(metrics.untrained_resnet(device)),
                                   "feature distance in an untrained ResNet-18's stages (seed 0; not LPIPS)", device)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description="Score the try-on baselines on a VITON-HD-layout dataset.")
    parser.add_argument("--root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--height", type=int, default=128, help="the width is 3/4 of it")
    parser.add_argument("--max-pairs", type=int, default=0)
    parser.add_argument("--detector-checkpoint", default=None, help="fashion_detector model_final.pt (else untrained)")
    parser.add_argument("--lpips-alexnet", default=None, help="torchvision alexnet state dict (with --lpips-heads)")
    parser.add_argument("--lpips-heads", default=None, help="the lpips package's weights/v0.1/alex.pth")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    device = torch.device("cpu")
    report = write_report(Layout(args.root, "test", args.height, args.height * 3 // 4),
                          ReportSettings(max_pairs=args.max_pairs), Path(args.out),
                          feature_distance(args.detector_checkpoint, device),
                          metrics.LPIPS(args.lpips_alexnet, args.lpips_heads, device) if args.lpips_alexnet else None)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
