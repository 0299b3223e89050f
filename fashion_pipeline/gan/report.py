"""The ablation report: the thesis's Table 5.2 for every trained variant, plus FID/KID and the fakes side by side.

Reads ``<data_root>/dcgan/<variant>/{history.json, generator.pt, fixed_noise_fakes.npy}`` and
``<data_root>/dcgan_training_set/<variant>.npy`` for whichever variants exist; writes
``<data_root>/ablation_report/{report.md, report.json, fakes_side_by_side.png}``.

``python -m fashion_pipeline.gan.report --data-root data [--inception-weights inception_v3.pth]``
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from fashion_pipeline.common import atomic, render
from fashion_pipeline.gan import dcgan, quality
from fashion_pipeline.gan.training_sets import VARIANTS

# Thesis, section 5.2 (best epoch, 200 epochs); "original" is from the per-experiment tables.
THESIS_TABLE = {
    "cropped": {"Loss_G": 2.0062, "Loss_D": 0.5132, "D_x": 0.6736},
    "original": {"Loss_G": 2.2091, "Loss_D": 0.5668, "D_x": 0.6509},
    "subset": {"Loss_G": 2.7983, "Loss_D": 0.6572, "D_x": 0.6469},
}
TABLE_METRICS = (("Loss_G", "Loss_G"), ("Loss_D", "Loss_D"), ("D_x", "D(x)"))


@dataclass
class ReportSettings:
    n_samples: int = 0  # fakes generated per generator; at least the feature dimension (quality.sample_plan)
    max_reals: int = 10_000  # reals per training set at most
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at half of each set
    seed: int = 0


def trained_variants(data_root: Path) -> list[str]:
    return [v for v in VARIANTS if (data_root / "dcgan" / v / dcgan.HISTORY_NAME).exists()]


def best_and_final(history: dict) -> tuple[dict, dict]:
    epochs = history["epochs"]
    return epochs[dcgan.best_epoch_index(epochs)], epochs[-1]


def table_markdown(summaries: dict[str, dict]) -> str:
    """Table 5.2: metrics at the best epoch per variant, with the thesis's values beside ours."""
    variants = list(summaries)
    headers = ["Metric"] + [f"{v} (ours)" for v in variants] + [f"{v} (thesis)" for v in variants]
    rows = [[label] + [summaries[v]["best"][key] for v in variants] + [THESIS_TABLE[v][key] for v in variants]
            for key, label in TABLE_METRICS]
    rows.append(["best epoch / trained"] + [f"{summaries[v]['best']['epoch']} / {summaries[v]['epochs']}"
                                            for v in variants] + ["? / 200"] * len(variants))
    return render.markdown_table(headers, rows)


def _sample_reals(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    if len(images) <= count:
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))]


def untrained_like(generator_path: Path, device, seed: int = 0):
    """A generator of the same architecture, freshly initialised: the baseline a trained one must beat."""
    import torch

    saved = torch.load(generator_path, map_location="cpu", weights_only=False)
    torch.manual_seed(seed)
    generator = dcgan.Generator(saved["nz"], saved["ngf"])
    generator.apply(dcgan.weights_init)
    return generator.to(device).eval()


def _distances(fakes: np.ndarray, reals: np.ndarray, settings: ReportSettings) -> dict:
    kid, kid_std = quality.kernel_inception_distance(fakes, reals, settings.kid_subsets, settings.kid_subset_size,
                                                     settings.seed)
    return {"FID": quality.fid_from_features(fakes, reals), "KID": kid, "KID_std": kid_std,
            "kid_subset_size": quality.kid_subset_size(len(fakes), len(reals), settings.kid_subset_size),
            "n_fake": len(fakes), "n_real": len(reals)}


def quality_scores(data_root: Path, variants: list[str], space: quality.FeatureSpace,
                   settings: ReportSettings) -> dict[str, dict]:
    """FID/KID of each variant's fakes against its own training set and against ``original``, and of an
    untrained generator of the same architecture against its own training set (the baseline)."""
    feature_cache: dict[str, np.ndarray] = {}

    def real_features(variant: str) -> Optional[np.ndarray]:
        path = data_root / "dcgan_training_set" / f"{variant}.npy"
        if variant not in feature_cache and path.exists():
            reals = _sample_reals(np.load(path, mmap_mode="r"), settings.max_reals, settings.seed)
            feature_cache[variant] = space.features(np.asarray(reals))
        return feature_cache.get(variant)

    scores = {}
    for variant in variants:
        own = real_features(variant)
        plan = quality.sample_plan(len(own), own.shape[1], settings.n_samples, settings.max_reals)
        generator_path = data_root / "dcgan" / variant / dcgan.GENERATOR_NAME
        generator = dcgan.load_generator(generator_path, space.device)
        fakes = space.features(dcgan.sample(generator, plan.n_fake, settings.seed, device=space.device))
        scores[variant] = {"plan": {"n_fake": plan.n_fake, "n_real": plan.n_real, "dim": plan.dim,
                                    "fid_reliable": plan.fid_reliable, "note": plan.note()}}
        for reference in dict.fromkeys([variant, "original"]):
            reals = real_features(reference)
            if reals is not None:
                scores[variant][f"vs_{reference}"] = _distances(fakes, reals, settings)
        untrained = space.features(dcgan.sample(untrained_like(generator_path, space.device, settings.seed),
                                                plan.n_fake, settings.seed, device=space.device))
        baseline = _distances(untrained, own, settings)
        scores[variant]["untrained_vs_" + variant] = baseline
        trained = scores[variant][f"vs_{variant}"]
        scores[variant]["untrained_over_trained"] = {"FID": baseline["FID"] / max(trained["FID"], 1e-12),
                                                     "KID": baseline["KID"] / max(trained["KID"], 1e-12)}
    return scores


def distance_rows(scores: dict[str, dict]):
    """(variant, generator, compared with, values) for every FID/KID pair computed."""
    for variant, entries in scores.items():
        for name, values in entries.items():
            if name.startswith("vs_"):
                yield variant, "trained", name.removeprefix("vs_"), values
            elif name.startswith("untrained_vs_"):
                yield variant, "untrained (same architecture)", name.removeprefix("untrained_vs_"), values


def quality_markdown(scores: dict[str, dict]) -> str:
    rows = [[variant, generator, reference, values["FID"], f"{values['KID']:.4f} ± {values['KID_std']:.4f}",
             f"{values['n_fake']} / {values['n_real']} (KID subsets of {values['kid_subset_size']})"]
            for variant, generator, reference, values in distance_rows(scores)]
    table = render.markdown_table(["DCGAN trained on", "generator", "compared with", "FID ↓", "KID ↓ (± spread over subsets)",
                                   "fakes / reals"], rows)
    ratios = [[variant, entries["untrained_over_trained"]["FID"], entries["untrained_over_trained"]["KID"]]
              for variant, entries in scores.items() if "untrained_over_trained" in entries]
    notes = [f"- **{variant}**: {entries['plan']['note']}" for variant, entries in scores.items() if "plan" in entries]
    return "\n".join([table, "", "Untrained / trained, on the variant's own training set (higher: the training "
                       "learned more):", "", render.markdown_table(["variant", "FID ratio", "KID ratio"], ratios), "",
                       "Sample sizes:", "", *notes])


def side_by_side(grids: dict[str, np.ndarray], cell: int = 64) -> Image.Image:
    """Each variant's 64 fixed-noise fakes as an 8x8 grid, the grids in one row with their names."""
    tiles = [render.image_grid(list(images), ncols=8, cell=cell) for images in grids.values()]
    header, gap = 24, 16
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (max(width, 1), header + max((t.height for t in tiles), default=1)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for name, tile in zip(grids, tiles):
        draw.text((x + 4, 4), name, fill="black")
        canvas.paste(tile, (x, header))
        x += tile.width + gap
    return canvas


def build_report(data_root: str | Path, space: Optional[quality.FeatureSpace],
                 settings: ReportSettings = ReportSettings(), variants: Optional[list[str]] = None) -> dict:
    """Compute and write the report; returns what ``report.json`` holds (plus the side-by-side image).

    ``variants``: which trained DCGANs to report (the asset passes those trained on the current
    training sets); by default every variant with a history on disk (CLI use).
    """
    data_root = Path(data_root)
    variants = trained_variants(data_root) if variants is None else variants
    if not variants:
        raise FileNotFoundError(f"no trained DCGAN under {data_root / 'dcgan'}: materialize dcgan first")
    summaries = {}
    for variant in variants:
        history = json.loads((data_root / "dcgan" / variant / dcgan.HISTORY_NAME).read_text())
        best, final = best_and_final(history)
        summaries[variant] = {"best": best, "final": final, "epochs": len(history["epochs"])}
    scores = quality_scores(data_root, variants, space, settings) if space is not None else {}
    grids = {v: np.load(data_root / "dcgan" / v / "fixed_noise_fakes.npy") for v in variants}
    picture = side_by_side(grids)
    out_dir = data_root / "ablation_report"
    atomic.write_bytes(out_dir / "fakes_side_by_side.png", render.png_bytes(picture))
    report = {"variants": variants, "table": summaries, "quality": scores,
              "feature_space": space.name if space else None,
              "feature_space_description": space.description if space else None}
    atomic.write_json(out_dir / "report.json", report, indent=2)
    atomic.write_text(out_dir / "report.md", report_markdown(report, "![fakes](fakes_side_by_side.png)"))
    report["picture"] = picture
    return report


def report_markdown(report: dict, picture_markdown: str) -> str:
    parts = ["# DCGAN ablation: cropped vs original vs subset", "",
             "## Table 5.2: losses and D(x) at the best epoch", "",
             "Best epoch: closest to the equilibrium D(x) = D(G(z)) = 0.5 (see `fashion_pipeline.gan.dcgan."
             "best_epoch_index`). The thesis's values come from 200 epochs on the full Pinterest scrape.", "",
             table_markdown(report["table"]), ""]
    if report["quality"]:
        parts += ["## Sample quality", "", f"Feature space: **{report['feature_space']}**: "
                  f"{report['feature_space_description']}.", "", quality_markdown(report["quality"]), ""]
    parts += ["## Fakes from the fixed noise vector, side by side", "", picture_markdown, ""]
    return "\n".join(parts)


def main(argv: Optional[list[str]] = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description="Write the DCGAN ablation report for the trained variants.")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--inception-weights", default=None, help="local inception_v3 state dict")
    parser.add_argument("--n-samples", type=int, default=0, help="fakes per generator; at least the feature dimension")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    best_json = root / "best_detector" / "best.json"
    # best.json stores the checkpoint relative to the data root
    checkpoint = str(root / json.loads(best_json.read_text())["checkpoint"]) if best_json.exists() else None
    space = quality.make_feature_space(args.inception_weights, checkpoint, torch.device("cpu"))
    report = build_report(root, space, ReportSettings(n_samples=args.n_samples))
    print(f"wrote {root / 'ablation_report' / 'report.md'} for {report['variants']}")


if __name__ == "__main__":
    main()
