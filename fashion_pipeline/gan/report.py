"""The ablation report: the thesis's Table 5.2 for every trained variant, plus FID/KID and the fakes side by side.

Reads each run's ``{history.json, generator.pt, fixed_noise_fakes.npy}`` and each variant's training set
from the folders a ``Layout`` names (the asset: Dagster's record; the CLI: ``--run``/``--training-set``, else
the newest published ``dcgan/<variant>/seed<k>/v/*`` and ``dcgan_training_set/<variant>/v/*``); writes
``{report.md, report.json, fakes_side_by_side.png}`` into ``out_dir`` (the CLI and the asset:
a new ``ablation_report/v/<version>/``).

``python -m fashion_pipeline.gan.report --data-root data [--inception-weights inception_v3.pth]
[--run VARIANT SEED FOLDER ...] [--training-set VARIANT FILE ...]``
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from fashion_pipeline.common import atomic, render, versions
from fashion_pipeline.common.paths import resolve_data_root
from fashion_pipeline.gan import dcgan, quality
from fashion_pipeline.gan.settings import TUTORIAL_LOG_EVERY
from fashion_pipeline.gan.training_sets import IMAGE_SIZES, VARIANTS, array_name

# Thesis, Table 5.2 (best epoch, 200 epochs); "original" is from the per-experiment tables. The thesis
# quotes cropped's Loss_D as 0.5132 in its per-experiment table and 0.5139 in Table 5.2: Table 5.2's here.
THESIS_TABLE = {
    "cropped": {"Loss_G": 2.0062, "Loss_D": 0.5139, "D_x": 0.6736},
    "original": {"Loss_G": 2.2091, "Loss_D": 0.5668, "D_x": 0.6509},
    "subset": {"Loss_G": 2.7983, "Loss_D": 0.6572, "D_x": 0.6469},
}
TABLE_METRICS = (("Loss_G", "Loss_G"), ("Loss_D", "Loss_D"), ("D_x", "D(x)"))
# Every statistic the tutorial's loop prints; D(G(z)) twice: while D trains (z1), and after D's step, in G's (z2).
STAT_LABELS = TABLE_METRICS + (("D_G_z1", "D(G(z)) z1: D's step"), ("D_G_z2", "D(G(z)) z2: G's step"))
TUTORIAL_KEY = "tutorial_last_logged"


@dataclass
class ReportSettings:
    n_samples: int = 0  # fakes generated per generator; at least the feature dimension (quality.sample_plan)
    max_reals: int = 10_000  # reals per training set at most
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at half of each set
    seed: int = 0


def run_dir(data_root: Path, variant: str, seed: str) -> Path:
    """Where ``dcgan[variant, seed]`` writes: ``dcgan/<variant>/seed<seed>/``."""
    return Path(data_root) / "dcgan" / variant / f"seed{seed}"


@dataclass
class Layout:
    """Where the report reads each run and training set. By default the CLI's layout under the data root;
    the ``ablation_report`` asset passes the folders and files Dagster recorded instead (``recorded``)."""

    data_root: Path
    run_folders: Optional[dict] = None  # (variant, seed) -> the run's folder
    training_sets: Optional[dict] = None  # (variant, image size) -> the .npy

    def run_dir(self, variant: str, seed: str) -> Path:
        if self.run_folders is not None:
            return Path(self.run_folders[(variant, seed)])
        return run_dir(self.data_root, variant, seed)

    def training_set(self, variant: str, size: int) -> Path:
        if self.training_sets is not None:
            found = self.training_sets.get((variant, size))
            return Path(found) if found else self.data_root / "dcgan_training_set" / f"(no recorded {variant} set at {size} px)"
        return self.data_root / "dcgan_training_set" / array_name(variant, size)


def trained_runs(data_root: Path) -> dict[str, list[str]]:
    """variant -> seeds with a history on disk (CLI use; the asset passes Dagster's record instead)."""
    runs = {}
    for variant in VARIANTS:
        seeds = sorted(p.parent.name.removeprefix("seed") for p in (Path(data_root) / "dcgan" / variant).glob(
            f"seed*/{dcgan.HISTORY_NAME}"))
        if seeds:
            runs[variant] = seeds
    return runs


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with one value: no spread can be measured from one seed)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def best_and_final(history: dict) -> tuple[dict, dict]:
    epochs = history["epochs"]
    return epochs[dcgan.best_epoch_index(epochs)], epochs[-1]


def _mean_and_std_of(rows: list[dict]) -> tuple[dict, dict]:
    mean, std = {}, {}
    for key in dcgan.STAT_NAMES:
        mean[key], std[key] = mean_and_std([row[key] for row in rows])
    return mean, std


def summarize_variant(histories: dict[str, dict]) -> dict:
    """One variant over its seeds: the best epoch of each seed, then mean and std of each statistic, for the
    epoch means and (when recorded) for the batch the tutorial's loop last printed in that epoch."""
    per_seed = {seed: best_and_final(history)[0] for seed, history in histories.items()}
    best, std = _mean_and_std_of(list(per_seed.values()))
    best["epoch"] = "/".join(str(row["epoch"]) for row in per_seed.values())
    epochs = "/".join(str(len(h["epochs"])) for h in histories.values())
    summary = {"seeds": list(histories), "per_seed": per_seed, "best": best, "std": std, "epochs": epochs}
    printed = [row[TUTORIAL_KEY] for row in per_seed.values() if TUTORIAL_KEY in row]
    if len(printed) == len(per_seed):  # histories from before it was recorded have none
        summary["tutorial"], summary["tutorial_std"] = _mean_and_std_of(printed)
        summary["tutorial"]["batch"] = "/".join(str(row["batch"]) for row in printed)
    return summary


def _with_spread(summary: dict, key: str, values: str = "best", spread: str = "std") -> str:
    if len(summary["seeds"]) < 2:
        return f"{summary[values][key]:.4f}"
    return f"{summary[values][key]:.4f} ± {summary[spread][key]:.4f}"


def table_markdown(summaries: dict[str, dict]) -> str:
    """Table 5.2: metrics at the best epoch per variant (mean ± std over seeds), the thesis's values beside ours."""
    variants = list(summaries)
    headers = ["Metric"] + [f"{v} (ours, {len(summaries[v]['seeds'])} seed(s))" for v in variants] + \
        [f"{v} (thesis)" for v in variants]
    rows = [[label] + [_with_spread(summaries[v], key) for v in variants] + [f"{THESIS_TABLE[v][key]:.4f}" for v in variants]
            for key, label in TABLE_METRICS]
    rows.append(["best epoch / trained"] + [f"{summaries[v]['best']['epoch']} / {summaries[v]['epochs']}"
                                            for v in variants] + ["? / 200"] * len(variants))
    return render.markdown_table(headers, rows)


def like_for_like_markdown(summaries: dict[str, dict]) -> str:
    """Table 5.2 like for like: per variant, at the best epoch, what the tutorial's loop prints (one batch),
    the epoch's means over all its batches, and the thesis's printed values, each labelled."""
    headers = ["Variant", "Values"] + [label for _, label in STAT_LABELS]
    rows = []
    for variant, summary in summaries.items():
        if "tutorial" in summary:
            rows.append([variant, f"ours, tutorial print: last logged batch (i % {TUTORIAL_LOG_EVERY} == 0; "
                                  f"batch {summary['tutorial']['batch']}) of the best epoch"]
                        + [_with_spread(summary, key, "tutorial", "tutorial_std") for key, _ in STAT_LABELS])
        rows.append([variant, "ours, per-epoch means of the best epoch"]
                    + [_with_spread(summary, key) for key, _ in STAT_LABELS])
        thesis = THESIS_TABLE.get(variant, {})
        rows.append([variant, "thesis, Table 5.2 (tutorial prints, 200 epochs, full scrape)"]
                    + [f"{thesis[key]:.4f}" if key in thesis else "not given" for key, _ in STAT_LABELS])
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
    generator = dcgan.Generator(saved["nz"], saved["ngf"], image_size=saved.get("image_size", 64))
    generator.apply(dcgan.weights_init)
    return generator.to(device).eval()


def _distances(fakes: np.ndarray, reals: np.ndarray, settings: ReportSettings) -> dict:
    kid, kid_std = quality.kernel_inception_distance(fakes, reals, settings.kid_subsets, settings.kid_subset_size,
                                                     settings.seed)
    return {"FID": quality.fid_from_features(fakes, reals), "KID": kid, "KID_std": kid_std,
            "kid_subset_size": quality.kid_subset_size(len(fakes), len(reals), settings.kid_subset_size),
            "n_fake": len(fakes), "n_real": len(reals)}


def quality_scores(layout: "Layout | Path", runs: dict[str, list[str]], space: quality.FeatureSpace,
                   settings: ReportSettings) -> dict[str, dict]:
    """Per variant and seed: FID/KID of the fakes against the variant's own training set and against
    ``original`` (the common reference), and of an untrained generator of the same architecture against
    its own training set (the baseline). Returns {variant: {seed: entries}}."""
    feature_cache: dict[Path, np.ndarray] = {}

    layout = layout if isinstance(layout, Layout) else Layout(Path(layout))  # a data root: the CLI's layout
    training_set_path = layout.training_set

    def real_features(variant: str, size: int) -> Optional[np.ndarray]:
        """Features of the variant's training set at the generators' resolution (a 128-px run is never
        scored against upsampled 64-px reals); None when that set was never built."""
        path = training_set_path(variant, size)
        if path not in feature_cache and path.exists():
            reals = _sample_reals(np.load(path, mmap_mode="r"), settings.max_reals, settings.seed)
            feature_cache[path] = space.features(np.asarray(reals))
        return feature_cache.get(path)

    scores: dict[str, dict] = {}
    for variant, seeds in runs.items():
        scores[variant] = {}
        for seed in seeds:
            generator_path = layout.run_dir(variant, seed) / dcgan.GENERATOR_NAME
            generator = dcgan.load_generator(generator_path, space.device)
            size = generator.image_size
            own = real_features(variant, size)
            if own is None:
                raise FileNotFoundError(f"{generator_path} is a {size}-px generator but its training set "
                                        f"{training_set_path(variant, size)} is missing")
            plan = quality.sample_plan(len(own), own.shape[1], settings.n_samples, settings.max_reals)
            fakes = space.features(dcgan.sample(generator, plan.n_fake, settings.seed, device=space.device))
            entries = {"plan": {"n_fake": plan.n_fake, "n_real": plan.n_real, "dim": plan.dim,
                                "fid_reliable": plan.fid_reliable, "note": plan.note()}}
            for reference in dict.fromkeys([variant, "original"]):
                reals = real_features(reference, size)
                if reals is not None:
                    entries[f"vs_{reference}"] = _distances(fakes, reals, settings)
            untrained = space.features(dcgan.sample(untrained_like(generator_path, space.device, settings.seed),
                                                    plan.n_fake, settings.seed, device=space.device))
            baseline = _distances(untrained, own, settings)
            entries["untrained_vs_" + variant] = baseline
            trained = entries[f"vs_{variant}"]
            entries["untrained_over_trained"] = {"FID": baseline["FID"] / max(trained["FID"], 1e-12),
                                                 "KID": baseline["KID"] / max(trained["KID"], 1e-12)}
            scores[variant][seed] = entries
    return scores


def variant_means(scores: dict[str, dict], name: str, metric: str) -> dict[str, tuple[float, float, int]]:
    """variant -> (mean, std, seeds) of one distance (e.g. 'vs_original', 'KID') over the variant's seeds."""
    out = {}
    for variant, by_seed in scores.items():
        values = [entries[name][metric] for entries in by_seed.values() if name in entries]
        if values:
            out[variant] = (*mean_and_std(values), len(values))
    return out


def differences_markdown(scores: dict[str, dict], metric: str = "KID") -> str:
    """Does each difference between variants exceed the seed-to-seed spread? Compared on the common
    reference (fakes vs ``original``), with the rule |mean_a - mean_b| > std_a + std_b."""
    means = variant_means(scores, "vs_original", metric)
    rows = []
    variants = list(means)
    for i, a in enumerate(variants):
        for b in variants[i + 1:]:
            (mean_a, std_a, n_a), (mean_b, std_b, n_b) = means[a], means[b]
            if min(n_a, n_b) < 2:
                verdict = "not assessable: fewer than 2 seeds"
            else:
                verdict = "yes" if abs(mean_a - mean_b) > std_a + std_b else "no: within the seed-to-seed spread"
            rows.append([f"{a} vs {b}", f"{mean_a - mean_b:+.5f}", f"{std_a:.5f} + {std_b:.5f}", verdict])
    return render.markdown_table([f"{metric} vs original", "difference of means", "seed spread (std a + std b)",
                                  "exceeds the spread?"], rows)


def distance_rows(scores: dict[str, dict]):
    """(variant, seed, generator, compared with, values) for every FID/KID pair computed."""
    for variant, by_seed in scores.items():
        for seed, entries in by_seed.items():
            for name, values in entries.items():
                if name.startswith("vs_"):
                    yield variant, seed, "trained", name.removeprefix("vs_"), values
                elif name.startswith("untrained_vs_"):
                    yield variant, seed, "untrained (same architecture)", name.removeprefix("untrained_vs_"), values


def quality_markdown(scores: dict[str, dict]) -> str:
    rows = [[variant, seed, generator, reference, values["FID"], f"{values['KID']:.4f} ± {values['KID_std']:.4f}",
             f"{values['n_fake']} / {values['n_real']} (KID subsets of {values['kid_subset_size']})"]
            for variant, seed, generator, reference, values in distance_rows(scores)]
    table = render.markdown_table(["DCGAN trained on", "seed", "generator", "compared with", "FID ↓",
                                   "KID ↓ (± spread over subsets)", "fakes / reals"], rows)
    ratios = [[variant, seed, entries["untrained_over_trained"]["FID"], entries["untrained_over_trained"]["KID"]]
              for variant, by_seed in scores.items() for seed, entries in by_seed.items()]
    notes = [f"- **{variant}**: {next(iter(by_seed.values()))['plan']['note']}" for variant, by_seed in scores.items()]
    return "\n".join([table, "", "Untrained / trained, on the variant's own training set (higher: the training "
                       "learned more):", "", render.markdown_table(["variant", "seed", "FID ratio", "KID ratio"], ratios),
                       "", "Do the variants differ by more than the seed-to-seed spread?", "", differences_markdown(scores),
                       "", "Sample sizes:", "", *notes])


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
                 settings: ReportSettings = ReportSettings(), runs: Optional[dict[str, list[str]]] = None,
                 layout: Optional[Layout] = None, out_dir: Optional[Path] = None) -> dict:
    """Compute and write the report; returns what ``report.json`` holds (plus the side-by-side image).

    ``runs``: variant -> the seeds to report (the asset passes those trained on the current training
    sets); by default every run with a history on disk (CLI use). ``layout``: where each run and training
    set lies (default: the CLI's layout). ``out_dir``: default ``<data_root>/ablation_report``.
    """
    data_root = Path(data_root)
    layout = layout or Layout(data_root)
    runs = trained_runs(data_root) if runs is None else {v: list(s) for v, s in runs.items() if s}
    if not runs:
        raise FileNotFoundError(f"no trained DCGAN under {data_root / 'dcgan'}: materialize dcgan first")
    summaries = {variant: summarize_variant({seed: json.loads((layout.run_dir(variant, seed) / dcgan.HISTORY_NAME)
                                                              .read_text()) for seed in seeds})
                 for variant, seeds in runs.items()}
    scores = quality_scores(layout, runs, space, settings) if space is not None else {}
    # the first seed's fixed-noise fakes per variant
    grids = {v: np.load(layout.run_dir(v, seeds[0]) / "fixed_noise_fakes.npy") for v, seeds in runs.items()}
    picture = side_by_side(grids)
    out_dir = Path(out_dir) if out_dir is not None else data_root / "ablation_report"
    atomic.write_bytes(out_dir / "fakes_side_by_side.png", render.png_bytes(picture))
    variants = list(runs)
    report = {"variants": variants, "runs": runs, "table": summaries, "quality": scores,
              "feature_space": space.name if space else None,
              "feature_space_description": space.description if space else None}
    atomic.write_json(out_dir / "report.json", report, indent=2)
    atomic.write_text(out_dir / "report.md", report_markdown(report, "![fakes](fakes_side_by_side.png)"))
    report["picture"] = picture
    return report


def load_report(out_dir: Path) -> dict:
    """A report ``build_report`` wrote, as it returned it (the asset reuses an identical earlier one)."""
    report = json.loads((Path(out_dir) / "report.json").read_text())
    with Image.open(Path(out_dir) / "fakes_side_by_side.png") as picture:
        report["picture"] = picture.copy()
    return report


def report_markdown(report: dict, picture_markdown: str) -> str:
    parts = ["# DCGAN ablation: cropped vs original vs subset", "",
             "## Table 5.2: losses and D(x) at the best epoch", "",
             "Best epoch: closest to the equilibrium D(x) = D(G(z)) = 0.5 (see `fashion_pipeline.gan.dcgan."
             "best_epoch_index`), per seed; ours are the per-epoch means at that epoch, as mean ± std over the "
             "seeds trained. The thesis's values come from 200 epochs on the full Pinterest scrape, printed by "
             "the PyTorch DCGAN tutorial's loop (single batches), so they are not like for like with epoch means.", "",
             table_markdown(report["table"]), "",
             "## Table 5.2 like for like", "",
             "The thesis's numbers are what the PyTorch DCGAN tutorial's loop prints: the statistics of one batch "
             f"every {TUTORIAL_LOG_EVERY} iterations. Ours are given both ways at each seed's best epoch: the last "
             "batch that loop would have printed, and the mean over all the epoch's batches (the table above).", "",
             like_for_like_markdown(report["table"]), ""]
    if report["quality"]:
        parts += ["## Sample quality", "", f"Feature space: **{report['feature_space']}**: "
                  f"{report['feature_space_description']}.", "", quality_markdown(report["quality"]), ""]
    parts += ["## Fakes from the fixed noise vector (first seed of each variant), side by side", "", picture_markdown, ""]
    return "\n".join(parts)


def latest_layout(data_root: Path) -> tuple[dict[str, list[str]], Layout]:
    """(variant -> seeds, Layout) from the newest published folders on disk (CLI use): per ``dcgan`` partition the
    newest folder with a history, per variant and size the newest training set. Not necessarily Dagster's record."""
    data_root = Path(data_root)
    runs, folders, sets = {}, {}, {}
    for variant in VARIANTS:
        for seed_dir in sorted((data_root / "dcgan" / variant).glob("seed*")):
            seed = seed_dir.name.removeprefix("seed")
            published = versions.latest_published(data_root, "dcgan", variant, seed_dir.name,
                                                  containing=dcgan.HISTORY_NAME)
            if published is not None:
                runs.setdefault(variant, []).append(seed)
                folders[(variant, seed)] = published.folder
        for size in IMAGE_SIZES:
            name = array_name(variant, size)
            published = versions.latest_published(data_root, "dcgan_training_set", variant, containing=name)
            if published is not None:
                sets[(variant, size)] = published.file(name)
    return runs, Layout(data_root, run_folders=folders, training_sets=sets)


def explicit_layout(data_root: Path, run_args: list, set_args: list) -> tuple[dict[str, list[str]], Layout]:
    """The layout ``--run VARIANT SEED FOLDER`` and ``--training-set VARIANT FILE`` name; training sets not
    named come from the newest published folders."""
    runs, latest = latest_layout(data_root)
    folders, sets = dict(latest.run_folders), dict(latest.training_sets)
    if run_args:  # the runs named replace the ones found on disk
        runs, folders = {}, {}
    for variant, seed, folder in run_args:
        if variant not in VARIANTS:
            raise ValueError(f"--run {variant} {seed} {folder}: unknown variant; expected one of {VARIANTS}")
        if not (Path(folder) / dcgan.HISTORY_NAME).is_file():
            raise FileNotFoundError(f"--run {variant} {seed} {folder}: no {dcgan.HISTORY_NAME} in that folder")
        runs.setdefault(variant, []).append(seed)
        folders[(variant, seed)] = Path(folder)
    for variant, path in set_args:
        if variant not in VARIANTS:
            raise ValueError(f"--training-set {variant} {path}: unknown variant; expected one of {VARIANTS}")
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape  # the header only: which size it is
        if len(shape) != 4 or shape[1] not in IMAGE_SIZES:
            raise ValueError(f"--training-set {variant} {path}: shape {shape}, expected N x S x S x 3 with S in {IMAGE_SIZES}")
        sets[(variant, shape[1])] = Path(path)
    return runs, Layout(Path(data_root), run_folders=folders, training_sets=sets)


def main(argv: Optional[list[str]] = None) -> None:
    import torch

    from fashion_pipeline.gan.detect import checkpoint_from_best

    parser = argparse.ArgumentParser(
        description="Write the DCGAN ablation report for the trained variants into ablation_report/v/<content>/.",
        epilog="Defaults are the newest published folders on disk (common.versions.latest_published), not "
               "necessarily Dagster's current record. The output folder is named by no record: "
               "python -m fashion_pipeline.gc removes it after --min-age-s.")
    parser.add_argument("--data-root", default=None, help="default: $FASHION_PIPELINE_DATA or ./data")
    parser.add_argument("--run", nargs=3, action="append", default=[], metavar=("VARIANT", "SEED", "FOLDER"),
                        help="a published dcgan folder (history.json, generator.pt, ...); repeat; "
                             "default: the newest folder of every dcgan partition on disk")
    parser.add_argument("--training-set", nargs=2, action="append", default=[], metavar=("VARIANT", "FILE"),
                        help="a training-set .npy (its size is read from it); default: the newest published one")
    parser.add_argument("--inception-weights", default=None, help="local inception_v3 state dict")
    parser.add_argument("--detector-checkpoint", type=Path, default=None,
                        help="feature space without --inception-weights (default: the newest best_detector's)")
    parser.add_argument("--n-samples", type=int, default=0, help="fakes per generator; at least the feature dimension")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    runs, layout = explicit_layout(root, args.run, args.training_set)
    if not runs:
        raise FileNotFoundError(f"no published dcgan folder under {root / 'dcgan'}: materialize dcgan first, or pass --run")
    checkpoint = args.detector_checkpoint
    if checkpoint is None and not args.inception_weights:
        best = versions.latest_published(root, "best_detector", containing="best.json")
        checkpoint = checkpoint_from_best(root, best.file("best.json")) if best else None
    space = quality.make_feature_space(args.inception_weights, str(checkpoint) if checkpoint else None,
                                       torch.device("cpu"))
    with versions.staging(root, "ablation_report") as out:  # a new folder: a recorded report is never overwritten
        report = build_report(root, space, ReportSettings(n_samples=args.n_samples), runs=runs, layout=layout,
                              out_dir=out.dir)
        published = out.publish()
    print(f"wrote {published.file('report.md')} for {report['variants']}")


if __name__ == "__main__":
    main()
