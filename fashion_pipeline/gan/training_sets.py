"""The three DCGAN training sets of the ablation, decoded once into N x S x S x 3 uint8 arrays (S = 64, or 128 on demand).

- ``cropped``: the full-body crops (already square, so only resized);
- ``original``: every deduplicated Pinterest image;
- ``subset``: a seeded random subset of ``original`` with as many images as ``cropped``.

Resizing policy: the shorter side is resized to 64 (antialiased) and the centre 64x64 square kept,
exactly what the reference's ``transforms.Resize(64)`` + ``transforms.CenterCrop(64)`` do. Padding was
rejected: borders would be a trivial cue for the discriminator and waste generator capacity. For the
``original`` images this cuts the sides of portrait photos, as the thesis's pipeline did.

Files (in ``dcgan_training_set/<variant>/v/<version>/``): ``<variant>.npy`` at 64 px (the thesis),
``<variant>_<S>px.npy`` at another size, each with its ``.parquet`` of image ids in order.

``python -m fashion_pipeline.gan.training_sets --data-root data --variant subset [--image-size 128]
[--dataset-manifest M] [--crops-manifest C]``
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from fashion_pipeline.common import atomic, versions
from fashion_pipeline.common.images import open_upright
from fashion_pipeline.common.paths import resolve_data_root

VARIANTS = ("cropped", "original", "subset")
IMAGE_SIZE = 64
IMAGE_SIZES = (64, 128)  # the DCGAN's (fashion_pipeline.gan.settings)


def array_name(variant: str, size: int = IMAGE_SIZE) -> str:
    """``cropped.npy`` at 64 px (the name the thesis-size sets always had), ``cropped_128px.npy`` otherwise."""
    return f"{variant}.npy" if size == IMAGE_SIZE else f"{variant}_{size}px.npy"


def load_square(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Decode ``path`` to a ``size`` x ``size`` x 3 uint8 array: shorter side to ``size``, centre crop."""
    try:
        # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale: far faster, and still >= 2x the target.
        image = open_upright(path, draft=("RGB", (size * 2, size * 2))).convert("RGB")
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    return square_array(image, size)


def square_array(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """Shorter side of an RGB image to ``size`` (antialiased), then the centre ``size`` x ``size`` square."""
    scale = size / min(image.width, image.height)
    resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                           Image.Resampling.BICUBIC, reducing_gap=None)
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_images(paths: Sequence[str | Path], size: int = IMAGE_SIZE, workers: int = 4) -> np.ndarray:
    """Decode every path into one N x size x size x 3 uint8 array (threads: PIL releases the GIL)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def fill(index: int) -> None:
        out[index] = load_square(paths[index], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fill, range(len(paths))))
    return out


def seeded_subset(image_ids: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` ids drawn without replacement, reproducibly, in the input's order."""
    if size > len(image_ids):
        raise ValueError(f"cannot draw a subset of {size} from {len(image_ids)} images")
    picked = np.random.default_rng(seed).choice(len(image_ids), size=size, replace=False)
    return [image_ids[i] for i in sorted(picked)]


def variant_rows(variant: str, dataset: pd.DataFrame, crops: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Which images (image_id, file_path relative to the data root) make up ``variant``."""
    if variant == "cropped":
        return crops[["image_id", "crop_path"]].rename(columns={"crop_path": "file_path"}).reset_index(drop=True)
    originals = dataset[["image_id", "file_path"]].sort_values("image_id").reset_index(drop=True)
    if variant == "original":
        return originals
    if variant == "subset":
        chosen = set(seeded_subset(list(originals["image_id"]), len(crops), seed))
        return originals[originals["image_id"].isin(chosen)].reset_index(drop=True)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def build_variant(data_root: str | Path, variant: str, dataset: pd.DataFrame, crops: pd.DataFrame,
                  out_dir: str | Path, seed: int = 0, size: int = IMAGE_SIZE) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode ``variant`` at ``size`` px and write ``array_name(variant, size)`` and its ``.parquet`` (image ids, in order)."""
    if size not in IMAGE_SIZES:
        raise ValueError(f"image size must be one of {IMAGE_SIZES}, got {size}")
    data_root, out_dir = Path(data_root), Path(out_dir)
    rows = variant_rows(variant, dataset, crops, seed)
    images = load_images([data_root / p for p in rows["file_path"]], size)
    array_path = atomic.save_npy(out_dir / array_name(variant, size), images)
    atomic.write_parquet(array_path.with_suffix(".parquet"), rows)
    return images, rows


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Build a DCGAN training set (S x S uint8 .npy); writes "
                    "dcgan_training_set/<variant>/v/<content>/<variant>[_<S>px].{npy,parquet} under the data root.",
        epilog="Defaults are the newest published folders on disk (common.versions.latest_published), not "
               "necessarily Dagster's current record. The output folder is named by no record: "
               "python -m fashion_pipeline.gc removes it after --min-age-s.")
    parser.add_argument("--data-root", default=None, help="the manifests' file paths are relative to it; default: $FASHION_PIPELINE_DATA or ./data")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--dataset-manifest", type=Path, default=None,
                        help="a pinterest_dataset manifest.parquet, for original and subset "
                             "(default: the newest published one)")
    parser.add_argument("--crops-manifest", type=Path, default=None,
                        help="a fullbody_crops manifest.parquet, for cropped and subset (default: the newest published one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset draw")
    parser.add_argument("--image-size", type=int, choices=IMAGE_SIZES, default=IMAGE_SIZE)
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    dataset = crops = None  # each variant reads only what it is drawn from
    if args.variant != "cropped":
        path = args.dataset_manifest or versions.latest_published_file(
            root, "pinterest_dataset", name="manifest.parquet", flag="--dataset-manifest")
        print(f"dataset manifest {path}")
        dataset = pd.read_parquet(path)
    if args.variant != "original":
        path = args.crops_manifest or versions.latest_published_file(
            root, "fullbody_crops", name="manifest.parquet", flag="--crops-manifest")
        print(f"crops manifest {path}")
        crops = pd.read_parquet(path)
    with versions.staging(root, "dcgan_training_set", args.variant) as out:  # never into a recorded folder
        images, _ = build_variant(root, args.variant, dataset, crops, out.dir, args.seed, args.image_size)
        published = out.publish()
    print(f"{args.variant}: {images.shape}")
    print(f"wrote {published.file(array_name(args.variant, args.image_size))}{' (reused)' if published.reused else ''}")


if __name__ == "__main__":
    main()
