"""Fixture data roots for the dedup tests: brand manifests with planted exact/near duplicates and bad files."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fashion_pipeline.common.atomic import write_bytes, write_parquet


def distinct_image(seed: int, width: int = 320, height: int = 480) -> Image.Image:
    """A smooth random picture: low-frequency noise upscaled, so distinct seeds give distant pHashes."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _row(root: Path, brand: str, pin_id: str, data: bytes, size: tuple[int, int], sha256: str | None = None) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    relative = f"pinterest_images/{brand}/images/{digest}.jpg"
    write_bytes(root / relative, data)
    return {
        "pin_id": pin_id, "page_url": f"http://site/pin/{pin_id}/", "image_url": f"http://site/i/originals/{digest}.jpg",
        "file_path": relative, "sha256": sha256 or digest, "width": size[0], "height": size[1],
        "brand": brand, "scraped_at": pd.Timestamp("2026-01-01T00:00:00Z"),
    }


def build_fixture(root: Path, with_bad_files: bool = True) -> dict:
    """Three brands. Expected: 5 unique images out of 11 rows (2 exact, 2 near, 2 quarantined)."""
    root = Path(root)
    originals = {k: distinct_image(k) for k in range(5)}
    rows = {"prada": [], "gucci": [], "dior": []}
    rows["prada"] += [_row(root, "prada", f"1{k}", jpeg_bytes(originals[k]), (320, 480)) for k in range(3)]
    # exact copy of pin 10 on another brand, and the same bytes repinned within gucci
    rows["gucci"].append(_row(root, "gucci", "20", jpeg_bytes(originals[0]), (320, 480)))
    rows["gucci"].append(_row(root, "gucci", "21", jpeg_bytes(originals[0]), (320, 480)))
    # near duplicates: a larger re-encode of image 1 (becomes the kept copy) and a small copy of image 2
    bigger = originals[1].resize((640, 960), Image.Resampling.LANCZOS)
    rows["gucci"].append(_row(root, "gucci", "22", jpeg_bytes(bigger, 70), (640, 960)))
    rows["dior"].append(_row(root, "dior", "30", jpeg_bytes(originals[2].resize((236, 354)), 60), (236, 354)))
    rows["dior"] += [_row(root, "dior", f"3{k}", jpeg_bytes(originals[k]), (320, 480)) for k in (3, 4)]
    if with_bad_files:
        truncated = jpeg_bytes(distinct_image(99))
        rows["dior"].append(_row(root, "dior", "38", truncated[: len(truncated) // 2], (320, 480)))
        missing = _row(root, "dior", "39", jpeg_bytes(distinct_image(98)), (320, 480))
        (root / missing["file_path"]).unlink()
        rows["dior"].append(missing)
    for brand, brand_rows in rows.items():
        write_parquet(root / "pinterest_images" / brand / "manifest.parquet", pd.DataFrame(brand_rows))
    truth = {"pins": {
        "10": {"look_id": "L0", "copy_kind": "original"}, "20": {"look_id": "L0", "copy_kind": "identical"},
        "21": {"look_id": "L0", "copy_kind": "repin"}, "11": {"look_id": "L1", "copy_kind": "original"},
        "22": {"look_id": "L1", "copy_kind": "resized"}, "12": {"look_id": "L2", "copy_kind": "original"},
        "30": {"look_id": "L2", "copy_kind": "reencoded"}, "33": {"look_id": "L3", "copy_kind": "original"},
        "34": {"look_id": "L4", "copy_kind": "original"},
    }}
    (root / "pinterest_site").mkdir(parents=True, exist_ok=True)
    (root / "pinterest_site" / "ground_truth.json").write_text(json.dumps(truth))
    return {"inputs": 11 if with_bad_files else 9, "unique": 5, "exact": 2, "near": 2, "quarantined": 2 if with_bad_files else 0}
