"""64-bit perceptual hashes of image files, computed once per file content and cached.

The hash is the classic pHash (the one ``imagehash.phash`` computes): grey 32x32 thumbnail ->
2-D DCT-II -> the 8x8 lowest frequencies -> one bit per coefficient, set when it exceeds their
median. The 64 bits are packed row-major, most significant bit first, into one ``uint64``, so the
Hamming distance of two hashes is ``popcount(a ^ b)`` (see ``search.py``).

A uniform frame (added by reposters) is trimmed before hashing: ``trim_uniform_border``.

Two speed-ups over decoding every file at full size:

* JPEG files are decoded with ``Image.draft``: libjpeg scales by 1/2..1/8 while decoding, straight
  from the DCT coefficients, so a 1000 px photo is decoded at ~128 px. The thumbnail is still
  at least 4x the 32 px hash input, so the final LANCZOS resize anti-aliases as before. Hashes
  therefore differ from imagehash's by a bit or two on some images; the quality benchmark
  (``bench/dedup_quality.py``) measures *this* hasher.
* A 16x16 colour thumbnail is kept from the same decode. pHash only sees coarse grey layout, so
  different runway looks on the same plain backdrop can collide; ``thumbnail_distance`` verifies
  every candidate pair on colour, on luminance alone when one side is black and white or
  desaturated, and refuses pairs whose hues disagree (colourways); see ``dataset.py`` for the
  measured effect.
* Every image is decoded upright (EXIF orientation applied, ``common/images.py``), and the
  recorded width and height are the upright ones.
* The mirror image's hash comes for free: flipping an image left-right multiplies the DCT
  coefficient of horizontal frequency ``v`` by ``(-1)**v``, so ``mirror_hash`` is computed from the
  same coefficients without decoding again. ``search.py`` uses it when mirrored copies should count
  as duplicates.

The cache (``phash_cache.parquet``) is keyed by the file's sha256: a rerun only decodes files whose
content it has not seen. An entry also records the byte size, so a file that changed on disk
under an unchanged manifest is noticed (by size) and hashed again.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageChops

from fashion_pipeline.common import images

HASH_SIZE = 8  # 8x8 DCT coefficients -> 64 bits
THUMB_SIZE = 32  # grey thumbnail the DCT runs on (imagehash's highfreq_factor=4)
DRAFT_SIZE = 4 * THUMB_SIZE  # JPEG draft decoding never goes below this, keeping the resize anti-aliased
COLOUR_SIZE = 16  # colour thumbnail side, for verifying pHash candidate pairs
BORDER_TOLERANCE = 16  # grey levels a frame pixel may differ from the corner colour (JPEG noise)
MIN_TRIM_KEEP = 0.75  # a frame is at most 12.5 % per side; more is a backdrop and is left alone
STD_FLOOR = 8.0  # grey levels; keeps near-flat channels from amplifying noise when standardised
ALGORITHM = "phash64-thumb16-trim-upright-v5"  # stored with every cache row; bump when the signatures change
CACHE_COLUMNS = ["sha256", "phash", "phash_mirror", "thumb", "width", "height", "n_bytes", "algorithm"]
# Below this many files a process pool costs more than it saves.
MIN_FILES_FOR_POOL = 64


def _dct_matrix(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the unnormalised DCT-II matrix (scipy.fftpack's convention)."""
    k = np.arange(keep)[:, None]
    x = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))


_DCT = _dct_matrix(THUMB_SIZE, HASH_SIZE)
# Horizontal frequency index of each coefficient, in the row-major order the bits are packed in.
_ODD_COLUMN = np.tile(np.arange(HASH_SIZE) % 2 == 1, HASH_SIZE)
_BIT_WEIGHTS = np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)


def pack_bits(bits: np.ndarray) -> np.uint64:
    """64 booleans (row-major) -> one uint64, first bit most significant."""
    return np.bitwise_or.reduce(_BIT_WEIGHTS[bits.reshape(-1)], initial=np.uint64(0))


def hash_from_coefficients(coefficients: np.ndarray) -> tuple[np.uint64, np.uint64]:
    """(hash, mirror hash) from the 8x8 low-frequency DCT block."""
    flat = coefficients.reshape(-1)
    mirrored = np.where(_ODD_COLUMN, -flat, flat)
    return pack_bits(flat > np.median(flat)), pack_bits(mirrored > np.median(mirrored))


def decode_small(image: Image.Image) -> Image.Image:
    """RGB image, decoded at reduced scale when the format allows (JPEG draft), never below DRAFT_SIZE,
    turned upright by its EXIF orientation (as every stage decodes, ``common/images.py``), with a
    uniform frame trimmed off."""
    image.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))  # square: the same request whichever way up
    return trim_uniform_border(images.transpose_upright(image).convert("RGB"))


def trim_uniform_border(rgb: Image.Image) -> Image.Image:
    """Crop away a uniform frame (a repost's added border) so copies with and without it hash alike.

    The frame colour is taken from the four corners, which must agree, and opposite margins must be
    equal (a frame, letterbox or pillarbox). The trim is skipped when it would keep less than
    MIN_TRIM_KEEP of either side: that is a plain backdrop, not a frame.
    """
    width, height = rgb.size
    corners = np.array([rgb.getpixel(xy) for xy in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))], dtype=int)
    if np.ptp(corners, axis=0).max() > BORDER_TOLERANCE:
        return rgb
    frame = Image.new("RGB", rgb.size, tuple(int(v) for v in corners.mean(axis=0)))
    difference = ImageChops.difference(rgb, frame).convert("L")
    box = difference.point(lambda v: 255 if v > BORDER_TOLERANCE else 0).getbbox()
    if box is None or box == (0, 0, width, height):
        return rgb
    if box[2] - box[0] < MIN_TRIM_KEEP * width or box[3] - box[1] < MIN_TRIM_KEEP * height:
        return rgb
    left, top, right, bottom = box[0], box[1], width - box[2], height - box[3]
    if not (_balanced(left, right) and _balanced(top, bottom)):
        return rgb  # a plain area on one side (backdrop, floor) is content; trimming it would be unstable
    return rgb.crop(box)


def _balanced(a: int, b: int) -> bool:
    """Opposite margins of an added frame are equal, give or take JPEG noise."""
    return abs(a - b) <= 2 + 0.1 * max(a, b)


def grey_thumbnail(rgb: Image.Image) -> np.ndarray:
    """32x32 float grey thumbnail, the pHash's input."""
    small = rgb.convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float64)


def colour_thumbnail(rgb: Image.Image) -> np.ndarray:
    """16x16x3 uint8 colour thumbnail, the verification signature (see ``thumbnail_distance``)."""
    small = rgb.resize((COLOUR_SIZE, COLOUR_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def signatures(image: Image.Image) -> tuple[np.uint64, np.uint64, np.ndarray]:
    """(pHash, mirror pHash, colour thumbnail) of an opened PIL image."""
    rgb = decode_small(image)
    value, mirror = hash_from_coefficients(_DCT @ grey_thumbnail(rgb) @ _DCT.T)
    return value, mirror, colour_thumbnail(rgb)


def phash_image(image: Image.Image) -> tuple[np.uint64, np.uint64]:
    """(hash, mirror hash) of an opened PIL image."""
    value, mirror, _ = signatures(image)
    return value, mirror


def thumbnail_distance(a: np.ndarray, b: np.ndarray, mirror_b: bool = False) -> np.ndarray:
    """Verification distance of thumbnail stacks (k,16,16,3): <= the limit (0.25) means the same picture.

    Three cases, decided per pair from the *chroma structure* (``chroma_structure``) of each side:

    * both in colour, comparable saturation: ``colour_distance`` (every channel standardised),
      which tells different looks on one backdrop apart (see ``dataset.py``);
    * one side black and white or toned monochrome (``chroma_strength`` at most ACHROMATIC_CHROMA)
      or clearly desaturated (at most FADED_RATIO of the other's): ``luma_distance`` alone. A greyscale repost of a colour photo
      keeps its luminance structure but has no colour to compare: before this rule its colour
      distance was 0.5 on imagededup's test photo and 0.17-0.26 on scikit-image's;
    * whenever both sides carry colour (including a desaturated copy), their chroma must point the
      same way (``hue_agreement`` >= MIN_HUE_AGREEMENT), else the pair is refused (``inf``): two
      colourways of one garment share luminance and layout, so hue is what separates them.

    ``mirror_b``: also compare ``b`` flipped left-right, keeping the smaller distance.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    distance = _pair_distance(a, b)
    if mirror_b:
        distance = np.minimum(distance, _pair_distance(a, b[:, :, ::-1]))
    return distance


ACHROMATIC_CHROMA = 3.0  # ``chroma_strength`` (grey levels) at or below which a thumbnail is black and white
FADED_RATIO = 0.5  # weaker / stronger chroma at or below it: a desaturated copy, compared on luminance
MIN_HUE_AGREEMENT = 0.75  # chroma cosine; a 28-degree hue cast scores ~0.87, a garment recoloured 120 degrees < 0


def _pair_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    chroma_a, chroma_b = chroma_structure(a), chroma_structure(b)
    strength_a, strength_b = chroma_strength(a), chroma_strength(b)
    weak, strong = np.minimum(strength_a, strength_b), np.maximum(strength_a, strength_b)
    faded = (weak <= ACHROMATIC_CHROMA) | (weak <= FADED_RATIO * strong)
    distance = np.where(faded, luma_distance(a, b), colour_distance(a, b))
    hue_differs = (weak > ACHROMATIC_CHROMA) & (hue_agreement(chroma_a, chroma_b) < MIN_HUE_AGREEMENT)
    return np.where(hue_differs, np.inf, distance).astype(np.float32)


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of per-channel standardised colour thumbnails.

    Standardising each channel (mean 0, std 1, with a floor on the std so flat images do not blow
    up) makes the distance blind to brightness, contrast and mild colour casts, while two different
    garments on the same layout still differ. Same picture: <= ~0.2; different pictures whose
    pHashes collide: >= ~0.26 on the benchmarks (bench/dedup_quality.py).
    """
    a = _standardise(np.asarray(a, dtype=np.float32))
    b = _standardise(np.asarray(b, dtype=np.float32))
    return np.abs(a - b).mean(axis=(1, 2, 3))


def luma_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``colour_distance`` on the luminance (Rec. 601 Y) only: what a greyscale copy still shares."""
    return colour_distance(_luma(a)[..., None], _luma(b)[..., None])


def chroma_structure(thumbs: np.ndarray) -> np.ndarray:
    """(k,16,16,2) Cb/Cr of each pixel minus the thumbnail's mean: colour *differences* within the picture.

    Removing the mean makes a uniform tint (sepia, a white-balance cast) count as no colour, and a
    greyscale copy is all zeros.
    """
    t = np.asarray(thumbs, dtype=np.float32)
    red, green, blue = t[..., 0], t[..., 1], t[..., 2]
    chroma = np.stack([-0.1687 * red - 0.3313 * green + 0.5 * blue, 0.5 * red - 0.4187 * green - 0.0813 * blue], axis=-1)
    return chroma - chroma.mean(axis=(1, 2), keepdims=True)


def hue_agreement(chroma_a: np.ndarray, chroma_b: np.ndarray) -> np.ndarray:
    """Cosine of two chroma structures: 1 when b's colours are a's scaled (desaturated, saturated)."""
    dot = (chroma_a * chroma_b).sum(axis=(1, 2, 3))
    norms = np.sqrt((chroma_a ** 2).sum(axis=(1, 2, 3)) * (chroma_b ** 2).sum(axis=(1, 2, 3)))
    return dot / np.maximum(norms, 1e-6)


def chroma_strength(thumbs: np.ndarray) -> np.ndarray:
    """RMS chroma (grey levels) that brightness does not explain: 0 for greyscale and for toned
    monochrome (sepia, duotone: colour a function of luminance), large for a colour photograph.

    The chroma structure's linear fit on luminance is removed first; what is left is colour a
    black-and-white print could not have.
    """
    chroma = chroma_structure(thumbs)
    luma = _luma(thumbs)
    luma = (luma - luma.mean(axis=(1, 2), keepdims=True))[..., None]
    slope = (chroma * luma).sum(axis=(1, 2), keepdims=True) / np.maximum((luma ** 2).sum(axis=(1, 2), keepdims=True), 1e-6)
    return _rms(chroma - slope * luma)


def _rms(chroma: np.ndarray) -> np.ndarray:
    return np.sqrt((chroma ** 2).sum(axis=-1).mean(axis=(1, 2)))


def _luma(thumbs: np.ndarray) -> np.ndarray:
    t = np.asarray(thumbs, dtype=np.float32)
    return 0.299 * t[..., 0] + 0.587 * t[..., 1] + 0.114 * t[..., 2]


def _standardise(thumbs: np.ndarray) -> np.ndarray:
    mean = thumbs.mean(axis=(1, 2), keepdims=True)
    std = thumbs.std(axis=(1, 2), keepdims=True)
    return (thumbs - mean) / (std + STD_FLOOR)


def thumbs_from_bytes(blobs) -> np.ndarray:
    """Stack stored thumbnails (bytes) into a (k,16,16,3) uint8 array."""
    if len(blobs) == 0:
        return np.zeros((0, COLOUR_SIZE, COLOUR_SIZE, 3), dtype=np.uint8)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, COLOUR_SIZE, COLOUR_SIZE, 3)


@dataclass(frozen=True)
class FileHash:
    """What hashing one file found; ``error`` is set (and the hash is 0) when it could not be read."""

    path: str
    sha256: str
    phash: int
    phash_mirror: int
    width: int
    height: int
    n_bytes: int
    error: str | None = None
    thumb: bytes = b""  # 16x16x3 uint8 colour thumbnail


def hash_file(path: str | os.PathLike) -> FileHash:
    """Read, sha256 and pHash one file. Never raises: a bad file comes back with ``error`` set."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return FileHash(path, "", 0, 0, 0, 0, 0, f"unreadable: {error.strerror or error}")
    sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        return FileHash(path, sha256, 0, 0, 0, 0, 0, "empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = images.upright_dimensions(image)  # manifests record the size as displayed
            value, mirror, thumb = signatures(image)  # convert() forces a full decode: truncation raises here
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files; each is quarantined
        return FileHash(path, sha256, 0, 0, 0, 0, len(data), f"undecodable: {type(error).__name__}: {error}")
    return FileHash(path, sha256, int(value), int(mirror), width, height, len(data), None, thumb.tobytes())


def hash_files(paths: Sequence[str | os.PathLike], workers: int | None = None) -> list[FileHash]:
    """Hash many files, in a process pool when there are enough of them (decoding is CPU-bound)."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(paths) < MIN_FILES_FOR_POOL:
        return [hash_file(p) for p in paths]
    chunk = max(8, len(paths) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(hash_file, [str(p) for p in paths], chunksize=chunk))


# --- cache -------------------------------------------------------------------------------------


def load_cache(path: str | os.PathLike):
    """The cache as a DataFrame indexed by sha256 (empty when absent or from another algorithm)."""
    import pandas as pd

    path = Path(path)
    empty = pd.DataFrame(columns=CACHE_COLUMNS).set_index("sha256")
    if not path.exists():
        return empty
    try:
        frame = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - a damaged cache is only lost work: rebuild it
        return empty
    if set(CACHE_COLUMNS) - set(frame.columns):  # written by an older version: rebuild
        return empty
    frame = frame[frame["algorithm"] == ALGORITHM]
    return frame.drop_duplicates("sha256", keep="last").set_index("sha256")


def cache_frame(hashes: Iterable[FileHash]):
    """Cache rows for the files that hashed cleanly."""
    import pandas as pd

    rows = [
        {
            "sha256": h.sha256,
            "phash": np.uint64(h.phash),
            "phash_mirror": np.uint64(h.phash_mirror),
            "thumb": h.thumb,
            "width": h.width,
            "height": h.height,
            "n_bytes": h.n_bytes,
            "algorithm": ALGORITHM,
        }
        for h in hashes
        if h.error is None
    ]
    return typed_cache(pd.DataFrame(rows, columns=CACHE_COLUMNS))


def typed_cache(frame):
    """Cache columns with their storage types (hashes as uint64), e.g. after a concat."""
    return frame.astype({"sha256": str, "phash": "uint64", "phash_mirror": "uint64", "thumb": object, "width": "int64",
                         "height": "int64", "n_bytes": "int64", "algorithm": str})


def to_hex(value: int) -> str:
    return f"{int(value):016x}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the 64-bit pHash (hex) of image files.")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    status = 0
    for result in hash_files(args.images, workers=args.workers):
        if result.error:
            print(f"{result.path}: {result.error}", file=sys.stderr)
            status = 1
        else:
            print(f"{to_hex(result.phash)}  mirror={to_hex(result.phash_mirror)}  {result.width}x{result.height}  {result.path}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
