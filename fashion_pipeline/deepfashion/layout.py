"""The published layouts of DeepFashion "Category and Attribute Prediction": files, columns, categories.

A DeepFashion root is the folder the download unpacks to. What loads (``detect_layout``):

- **list files**, one of
  - ``Anno_coarse/``: today's download (the 50-category, 289,222-image annotation set);
  - ``Anno/``: the same files in the 2016 download and most published code;
  - ``Anno_fine/``: the fine-grained subset, which has no count-line list files for images but
    per-split files, line-aligned: ``{split}.txt`` (image names), ``{split}_cate.txt`` (one
    1-based category label a line), ``{split}_bbox.txt`` (``x_1 y_1 x_2 y_2`` a line), plus its
    own ``list_category_cloth.txt`` (count line, header, ``<name> <type>``). The three classes
    come from that file's ``category_type``, as for the coarse set;
- ``Eval/list_eval_partition.txt`` (the coarse set's split; the fine set's split is its file names);
- **images**: ``Img/img/<Folder>/img_XXXXXXXX.jpg`` (as unzipped), ``img/<Folder>/...`` at the
  root, or ``Img/<Folder>/...``. Image names in every list file start with ``img/``; they are
  relative to ``Img/`` in the download.

When both a coarse and the fine set are present, ``annotations`` chooses (``auto`` = coarse).
A root holding two coarse folders, two image folders, or a partial set of list files is a mixed
layout and an error, as is a root matching none; the error lists what was found and what loads.
Folder names are used verbatim: the download's names carry HTML entities (``Ombr&eacute;``),
ampersands and commas, and the list files name them that way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# ---------------------------------------------------------------------------- files and folders

COARSE_DIRS = ("Anno_coarse", "Anno")  # today's download first, then the 2016 one
FINE_DIR = "Anno_fine"
CATEGORY_CLOTH_FILE = "list_category_cloth.txt"
CATEGORY_IMG_FILE = "list_category_img.txt"
BBOX_FILE = "list_bbox.txt"
COARSE_FILES = (CATEGORY_CLOTH_FILE, CATEGORY_IMG_FILE, BBOX_FILE)
EVAL_PARTITION = "Eval/list_eval_partition.txt"
IMAGE_PREFIX = "img/"  # every image name in the list files starts with it

SPLITS = ("train", "val", "test")
ANNOTATION_SETS = ("auto", "coarse", "fine")
# The fine set's per-split files: image names, category labels, boxes (same line = same image).
FINE_SPLIT_FILES = {split: (f"{split}.txt", f"{split}_cate.txt", f"{split}_bbox.txt") for split in SPLITS}
FINE_FILES = (CATEGORY_CLOTH_FILE, *(name for files in FINE_SPLIT_FILES.values() for name in files))

# Column names as written on each count-line file's second line.
CLOTH_COLUMNS = ("category_name", "category_type")
CATEGORY_IMG_COLUMNS = ("image_name", "category_label")
BBOX_COLUMNS = ("image_name", "x_1", "y_1", "x_2", "y_2")
PARTITION_COLUMNS = ("image_name", "evaluation_status")

# Today's download: what the embedded sample is written as.
CURRENT_ANNOTATION_DIR = COARSE_DIRS[0]
CURRENT_IMAGE_ROOT = "Img"

# The benchmark's 50 categories in file order (category_label = position + 1) with their category_type:
# 1 = upper-body, 2 = lower-body, 3 = full-body.
CATEGORIES: tuple[tuple[str, int], ...] = (
    ("Anorak", 1), ("Blazer", 1), ("Blouse", 1), ("Bomber", 1), ("Button-Down", 1),
    ("Cardigan", 1), ("Flannel", 1), ("Halter", 1), ("Henley", 1), ("Hoodie", 1),
    ("Jacket", 1), ("Jersey", 1), ("Parka", 1), ("Peacoat", 1), ("Poncho", 1),
    ("Sweater", 1), ("Tank", 1), ("Tee", 1), ("Top", 1), ("Turtleneck", 1),
    ("Capris", 2), ("Chinos", 2), ("Culottes", 2), ("Cutoffs", 2), ("Gauchos", 2),
    ("Jeans", 2), ("Jeggings", 2), ("Jodhpurs", 2), ("Joggers", 2), ("Leggings", 2),
    ("Sarong", 2), ("Shorts", 2), ("Skirt", 2), ("Sweatpants", 2), ("Sweatshorts", 2),
    ("Trunks", 2),
    ("Caftan", 3), ("Cape", 3), ("Coat", 3), ("Coverup", 3), ("Dress", 3),
    ("Jumpsuit", 3), ("Kaftan", 3), ("Kimono", 3), ("Nightdress", 3), ("Onesie", 3),
    ("Robe", 3), ("Romper", 3), ("Shirtdress", 3), ("Sundress", 3),
)

# COCO categories of the converted set; ids equal DeepFashion's category_type.
COCO_CATEGORIES = [
    {"id": 1, "name": "upper", "supercategory": "clothing"},
    {"id": 2, "name": "lower", "supercategory": "clothing"},
    {"id": 3, "name": "full", "supercategory": "clothing"},
]
CATEGORY_TYPE_NAMES = {1: "upper", 2: "lower", 3: "full"}

# Size of the official benchmark and the thesis's random train/val split of it.
OFFICIAL_IMAGE_COUNT = 289_222
THESIS_RANDOM_TRAIN = 200_000
THESIS_RANDOM_VAL = 89_222

EXPECTED = (
    "expected one of: Anno_coarse/ (today's download) or Anno/ (2016) holding list_category_cloth.txt, "
    "list_category_img.txt and list_bbox.txt, with Eval/list_eval_partition.txt; or Anno_fine/ holding "
    "list_category_cloth.txt and {train,val,test}.txt, {train,val,test}_cate.txt, {train,val,test}_bbox.txt; "
    "and the images under Img/img/, img/ or Img/ (<Folder>/img_XXXXXXXX.jpg)"
)


class LayoutError(ValueError):
    """The folder is not a DeepFashion root in a layout that loads, or mixes layouts."""


@dataclass(frozen=True)
class Layout:
    """Where one root keeps its files: all paths relative to the root."""

    annotation_set: str  # "coarse" or "fine"
    annotation_dir: str  # "Anno_coarse", "Anno" or "Anno_fine"
    image_root: str  # the folder the list files' names resolve against: "Img" or "."
    strip_prefix: bool  # True for Img/<Folder>/...: the names' leading img/ is dropped

    @property
    def image_dir(self) -> str:
        """The folder holding the item folders, as found on disk."""
        if self.strip_prefix:
            return self.image_root
        return IMAGE_PREFIX.rstrip("/") if self.image_root == "." else f"{self.image_root}/{IMAGE_PREFIX.rstrip('/')}"

    @property
    def description(self) -> str:
        lists = f"{self.annotation_dir}/" + (" + Eval/" if self.annotation_set == "coarse" else "")
        era = {"Anno_coarse": "today's download", "Anno": "2016 download", "Anno_fine": "fine-grained subset"}
        return f"{lists} + {self.image_dir}/ ({era[self.annotation_dir]})"

    def path(self, name: str) -> str:
        """A list file's path relative to the root, as written in messages and skip examples."""
        return f"{self.annotation_dir}/{name}"

    def file_name(self, image_name: str) -> str | None:
        """The image's path relative to ``image_root`` (COCO ``file_name``); None when it cannot be one."""
        if not self.strip_prefix:
            return image_name
        return image_name[len(IMAGE_PREFIX):] if image_name.startswith(IMAGE_PREFIX) else None

    def as_metadata(self) -> dict:
        return {**asdict(self), "image_dir": self.image_dir, "description": self.description}


# ---------------------------------------------------------------------------- detection


def detect_layout(root: Path | str, annotations: str = "auto") -> Layout:
    """The layout of ``root``; ``annotations`` picks coarse or fine when both are there."""
    if annotations not in ANNOTATION_SETS:
        raise ValueError(f"annotations must be one of {ANNOTATION_SETS}, got {annotations!r}")
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"DeepFashion root {root} is not a folder; {EXPECTED}")
    coarse_dir = _coarse_dir(root)
    fine = _fine_present(root)
    annotation_set = _choose_set(root, annotations, coarse_dir, fine)
    if annotation_set == "coarse" and not (root / EVAL_PARTITION).is_file():
        raise LayoutError(f"DeepFashion root {root} has {coarse_dir}/ but no {EVAL_PARTITION}. {_found(root)}; {EXPECTED}")
    image_root, strip = _image_folder(root)
    return Layout(annotation_set, coarse_dir if annotation_set == "coarse" else FINE_DIR, image_root, strip)


def _coarse_dir(root: Path) -> str | None:
    """The one coarse annotation folder; an error when two hold list files or one holds only some."""
    holding = {name: [f for f in COARSE_FILES if (root / name / f).is_file()] for name in COARSE_DIRS}
    holding = {name: files for name, files in holding.items() if files}
    if len(holding) > 1:
        listed = "; ".join(f"{name}/ holds {', '.join(files)}" for name, files in holding.items())
        raise LayoutError(f"DeepFashion root {root} mixes layouts: {listed}. Keep one of "
                          f"{' or '.join(d + '/' for d in holding)} (they are the same annotations, renamed)")
    for name, files in holding.items():
        missing = [f for f in COARSE_FILES if f not in files]
        if missing:
            raise LayoutError(f"DeepFashion root {root}: {name}/ holds {', '.join(files)} but lacks "
                              f"{', '.join(missing)}. {_found(root)}; {EXPECTED}")
        return name
    return None


def _fine_present(root: Path) -> bool:
    present = [f for f in FINE_FILES if (root / FINE_DIR / f).is_file()]
    if present and len(present) < len(FINE_FILES):
        missing = [f for f in FINE_FILES if f not in present]
        raise LayoutError(f"DeepFashion root {root}: {FINE_DIR}/ lacks {', '.join(missing)} "
                          f"(it holds {', '.join(present)}); {EXPECTED}")
    return bool(present)


def _choose_set(root: Path, annotations: str, coarse_dir: str | None, fine: bool) -> str:
    if annotations == "coarse" and coarse_dir is None:
        raise LayoutError(f"annotations='coarse' but DeepFashion root {root} has no coarse list files. {_found(root)}; {EXPECTED}")
    if annotations == "fine" and not fine:
        raise LayoutError(f"annotations='fine' but DeepFashion root {root} has no {FINE_DIR}/. {_found(root)}; {EXPECTED}")
    if annotations != "auto":
        return annotations
    if coarse_dir is not None:
        return "coarse"  # the full 289,222-image set the thesis used
    if fine:
        return "fine"
    raise LayoutError(f"DeepFashion root {root} matches no published layout. {_found(root)}; {EXPECTED}")


def _image_folder(root: Path) -> tuple[str, bool]:
    """(image_root, strip_prefix) of the one image folder; an error when none or several."""
    candidates = []
    if (root / "Img" / "img").is_dir():
        candidates.append(("Img", False, "Img/img/"))
    if (root / "img").is_dir():
        candidates.append((".", False, "img/"))
    if (root / "Img").is_dir() and not (root / "Img" / "img").is_dir() and _has_subfolders(root / "Img"):
        candidates.append(("Img", True, "Img/"))
    if len(candidates) > 1:
        raise LayoutError(f"DeepFashion root {root} mixes layouts: images under "
                          f"{' and '.join(c[2] for c in candidates)}. Keep one image folder")
    if not candidates:
        raise LayoutError(f"DeepFashion root {root} has no image folder. {_found(root)}; {EXPECTED}")
    return candidates[0][0], candidates[0][1]


def _has_subfolders(folder: Path) -> bool:
    return any(entry.is_dir() for entry in folder.iterdir())


def _found(root: Path, limit: int = 20) -> str:
    """What the root holds, for error messages: top-level entries, and list files one level down."""
    entries = sorted(root.iterdir(), key=lambda p: p.name)
    shown = []
    for entry in entries[:limit]:
        if entry.is_dir():
            inside = sorted(p.name for p in entry.iterdir() if p.suffix == ".txt")[:6]
            shown.append(f"{entry.name}/" + (f" ({', '.join(inside)})" if inside else ""))
        else:
            shown.append(entry.name)
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return f"Found: {', '.join(shown) or 'nothing'}{more}"
