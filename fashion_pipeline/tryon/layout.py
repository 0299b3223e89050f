"""Reader for try-on datasets in the VITON-HD layout, strict about the files users most often get wrong.

The layout (shadow2496/VITON-HD ``datasets.py``; CP-VTON's ``cp_dataset.py`` is the same but for ``pose/`` and the
old ``pose_keypoints`` key)::

    <root>/{train,test}_pairs.txt          one "person.jpg cloth.jpg" per line
    <root>/<split>/image/<person>.jpg      the person
    <root>/<split>/cloth/<cloth>.jpg       the in-shop garment
    <root>/<split>/cloth-mask/<cloth>.jpg  its mask (>= 128 is garment, as VITON-HD thresholds it)
    <root>/<split>/image-parse/<person stem>.png           palette PNG, CIHP ids 0..19
    <root>/<split>/openpose-json/<person stem>_keypoints.json   people[0].pose_keypoints_2d, BODY_25 (75 numbers)

Unpaired ground truth (only the synthetic sets have it): ``image/<person stem>__<cloth stem>.jpg`` and its parse.
A pair whose cloth is the person's own (the same name) is its own truth: the "paired" setting of real sets.

Every problem is a ``LayoutError`` naming the file (and the pairs file's line). Pictures are resized to the
configured 4:3 (height:width) resolution, as VITON-HD's loader does; a picture that is not 4:3 is refused,
not stretched.

``python -m fashion_pipeline.tryon.layout --root $TRYON_ROOT --split test --height 256``
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_pipeline.synthetic.parse import CIHP_LABELS
from fashion_pipeline.synthetic.tryon import check_size, truth_stem

ROOT_ENV_VAR = "TRYON_ROOT"
SPLITS = ("train", "test")
BODY_25_VALUES = 75
# Names other releases of the same data use (HR-VITON's zip of VITON-HD): reported, never guessed at.
ALTERNATE_FOLDERS = {"image-parse": ("image-parse-v3",), "openpose-json": ("openpose_json",),
                     "cloth-mask": ("cloth_mask",)}


class LayoutError(ValueError):
    """One unusable item: ``reason`` is a short key for counting, the message names the file."""

    def __init__(self, path: Path | str, reason: str, detail: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {detail}")


@dataclass(frozen=True)
class Pair:
    split: str
    person: str  # file names as the pairs file has them, e.g. "00891_00.jpg"
    cloth: str
    line: int

    @property
    def person_stem(self) -> str:
        return Path(self.person).stem

    @property
    def cloth_stem(self) -> str:
        return Path(self.cloth).stem

    @property
    def paired(self) -> bool:
        return self.person == self.cloth

    @property
    def name(self) -> str:
        return truth_stem(self.person_stem, self.cloth_stem)


@dataclass
class Sample:
    """One pair, loaded and resized: images H x W x 3 uint8, masks bool, parse uint8 CIHP ids, keypoints 25 x 3."""

    pair: Pair
    person: np.ndarray
    parse: np.ndarray
    keypoints: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    truth: np.ndarray | None
    truth_parse: np.ndarray | None
    truth_warp: dict | None  # synthetic only: the true warp's landmarks (person and cloth frame)


def pairs_file(root: Path, split: str) -> Path:
    return Path(root) / f"{split}_pairs.txt"


def read_pairs(root: Path | str, split: str) -> list[Pair]:
    path = pairs_file(Path(root), split)
    if not path.is_file():
        raise LayoutError(path, "missing_pairs_file", f"no pairs file: expected {path.name} next to the {split}/ folder")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise LayoutError(f"{path}:{number}", "bad_pairs_line",
                              f"expected 'person.jpg cloth.jpg', got {line.strip()!r}")
        pairs.append(Pair(split, fields[0], fields[1], number))
    return pairs


class Layout:
    """One split of a dataset; ``load`` reads a pair at ``height`` x ``width`` (4:3)."""

    def __init__(self, root: Path | str, split: str, height: int, width: int):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        check_size(height, width)
        self.root, self.split, self.height, self.width = Path(root), split, height, width
        self.folder = self.root / split

    def files(self, pair: Pair) -> dict[str, Path]:
        folder = self.folder
        return {
            "image": folder / "image" / pair.person,
            "image-parse": folder / "image-parse" / f"{pair.person_stem}.png",
            "openpose-json": folder / "openpose-json" / f"{pair.person_stem}_keypoints.json",
            "cloth": folder / "cloth" / pair.cloth,
            "cloth-mask": folder / "cloth-mask" / pair.cloth,
        }

    def truth_files(self, pair: Pair) -> dict[str, Path] | None:
        """The ground truth's image and parse, or None (an unpaired pair of a real set)."""
        if pair.paired:
            files = self.files(pair)
            return {"image": files["image"], "image-parse": files["image-parse"]}
        image = self.folder / "image" / f"{pair.name}.jpg"
        if not image.is_file():
            return None
        return {"image": image, "image-parse": self.folder / "image-parse" / f"{pair.name}.png",
                "warp-truth": self.folder / "warp-truth" / f"{pair.name}.json"}

    def load(self, pair: Pair) -> Sample:
        files = self.files(pair)
        for kind, path in files.items():
            if not path.is_file():
                self._check_folder(kind, path.parent)
                raise LayoutError(path, f"missing_{kind.replace('-', '_')}",
                                  f"{kind} file missing (named by {pairs_file(self.root, self.split).name} line {pair.line})")
        person, person_size = self._rgb(files["image"])
        parse = self._parse(files["image-parse"], person_size)
        cloth, cloth_size = self._rgb(files["cloth"])
        cloth_mask = self._mask(files["cloth-mask"], cloth_size)
        points = read_keypoints(files["openpose-json"]) * np.array([self.width / person_size[0],
                                                                    self.height / person_size[1], 1.0])
        truth = truth_parse = warp = None
        truth_files = self.truth_files(pair)
        if truth_files is not None:
            truth, truth_size = self._rgb(truth_files["image"])
            if truth_size != person_size:
                raise LayoutError(truth_files["image"], "size_mismatch",
                                  f"ground truth is {truth_size[0]}x{truth_size[1]} but {files['image'].name} is "
                                  f"{person_size[0]}x{person_size[1]} (width x height)")
            truth_parse = self._parse(truth_files["image-parse"], truth_size)
            warp_path = truth_files.get("warp-truth")
            if warp_path is not None and warp_path.is_file():
                warp = _scaled_warp(json.loads(warp_path.read_text()), self.width / person_size[0])
        return Sample(pair, person, parse, points, cloth, cloth_mask, truth, truth_parse, warp)

    def _check_folder(self, kind: str, folder: Path) -> None:
        """A missing folder under another release's name gets its own message (one per split, not per file)."""
        if folder.is_dir():
            return
        for other in ALTERNATE_FOLDERS.get(kind, ()):
            if (folder.parent / other).is_dir():
                raise LayoutError(folder, "folder_named_differently",
                                  f"no {kind}/ folder, but {other}/ exists (the HR-VITON release's name): link or "
                                  f"rename it to {kind}/, the name VITON-HD's datasets.py reads")

    # -- one file each

    def _open(self, path: Path) -> Image.Image:
        if not path.is_file():
            raise LayoutError(path, "missing_file", "file missing")
        try:
            image = Image.open(path)
            image.load()
        except OSError as error:
            raise LayoutError(path, "unreadable", f"not a readable image ({error})") from error
        width, height = image.size
        if abs(height * 3 - width * 4) > max(height, width) * 0.01 * 4:
            raise LayoutError(path, "not_4_3", f"is {width}x{height} (width x height), not 4:3 height:width as "
                                               "VITON-HD's 768x1024: crop it to 4:3 first")
        return image

    def _rgb(self, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
        image = self._open(path)
        size = image.size
        resized = image.convert("RGB").resize((self.width, self.height), Image.Resampling.BICUBIC)
        return np.asarray(resized), size

    def _parse(self, path: Path, expected: tuple[int, int]) -> np.ndarray:
        image = self._open(path)
        if image.mode not in ("P", "L"):
            raise LayoutError(path, "parse_not_palette",
                              f"parse PNG is mode {image.mode} (colours), expected a palette (mode P) PNG whose pixel "
                              "values are CIHP ids 0..19: save the label array with a palette, not its colour rendering")
        if image.size != expected:
            raise LayoutError(path, "size_mismatch", f"parse is {image.size[0]}x{image.size[1]} but the person image "
                                                     f"is {expected[0]}x{expected[1]} (width x height)")
        labels = np.asarray(image)
        if labels.size and int(labels.max()) >= len(CIHP_LABELS):
            raise LayoutError(path, "parse_bad_ids", f"parse holds id {int(labels.max())}; CIHP ids are 0..19")
        return np.asarray(image.resize((self.width, self.height), Image.Resampling.NEAREST))

    def _mask(self, path: Path, expected: tuple[int, int]) -> np.ndarray:
        image = self._open(path)
        if image.size != expected:
            raise LayoutError(path, "size_mismatch", f"cloth-mask is {image.size[0]}x{image.size[1]} but its cloth "
                                                     f"is {expected[0]}x{expected[1]} (width x height)")
        resized = image.convert("L").resize((self.width, self.height), Image.Resampling.NEAREST)
        return np.asarray(resized) >= 128


def _scaled_warp(warp: dict, scale: float) -> dict:
    return {key: (np.asarray(value, np.float64) * scale) for key, value in warp.items()}


def read_keypoints(path: Path) -> np.ndarray:
    """people[0].pose_keypoints_2d as 25 x 3; clear errors for the COCO-18 model and the pre-1.2 key."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise LayoutError(path, "unreadable", f"not readable JSON ({error})") from error
    people = data.get("people") if isinstance(data, dict) else None
    if not people:
        raise LayoutError(path, "no_person", "no 'people' entry: OpenPose found nobody in this picture")
    person = people[0]
    if "pose_keypoints_2d" not in person:
        if "pose_keypoints" in person:
            raise LayoutError(path, "old_pose_key", "has 'pose_keypoints' (OpenPose < 1.2, CP-VTON's files); "
                                                    "VITON-HD's layout needs 'pose_keypoints_2d' in BODY_25 order")
        raise LayoutError(path, "no_keypoints", "people[0] has no 'pose_keypoints_2d'")
    values = person["pose_keypoints_2d"]
    if len(values) == 54:
        raise LayoutError(path, "coco_18_keypoints", "has 18 keypoints (OpenPose's COCO model); VITON-HD expects "
                                                     "BODY_25 (25 keypoints, 75 numbers): rerun OpenPose with "
                                                     "--model_pose BODY_25")
    if len(values) != BODY_25_VALUES:
        raise LayoutError(path, "bad_keypoint_count", f"pose_keypoints_2d has {len(values)} numbers, expected 75 (BODY_25)")
    return np.asarray(values, np.float64).reshape(25, 3)


@dataclass
class Validation:
    pairs: int
    usable: int
    problems: list[tuple[str, str, str]]  # (reason, file, message)

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(reason for reason, _, _ in self.problems).items()))

    @property
    def bad_share(self) -> float:
        return (self.pairs - self.usable) / self.pairs if self.pairs else 1.0


def validate(layout: Layout, pairs: list[Pair]) -> Validation:
    """Load every pair; each failure is kept with its file and reason instead of stopping at the first."""
    problems = []
    for pair in pairs:
        try:
            layout.load(pair)
        except LayoutError as error:
            problems.append((error.reason, error.path, str(error)))
    return Validation(len(pairs), len(pairs) - len(problems), problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate a try-on dataset in the VITON-HD layout.")
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--height", type=int, default=256, help="the width is 3/4 of it")
    args = parser.parse_args(argv)
    layout = Layout(args.root, args.split, args.height, args.height * 3 // 4)
    result = validate(layout, read_pairs(args.root, args.split))
    for _, _, message in result.problems[:50]:
        print(message)
    print(f"{result.usable}/{result.pairs} pairs usable; problems by reason: {result.by_reason}")
    return 0 if not result.problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
