"""The published layout of DeepFashion "Category and Attribute Prediction": files, columns, categories."""
from __future__ import annotations

CATEGORY_CLOTH = "Anno/list_category_cloth.txt"
CATEGORY_IMG = "Anno/list_category_img.txt"
BBOX = "Anno/list_bbox.txt"
EVAL_PARTITION = "Eval/list_eval_partition.txt"
IMAGE_DIR = "img"

# Column names as written on each file's second line.
COLUMNS = {
    CATEGORY_CLOTH: ("category_name", "category_type"),
    CATEGORY_IMG: ("image_name", "category_label"),
    BBOX: ("image_name", "x_1", "y_1", "x_2", "y_2"),
    EVAL_PARTITION: ("image_name", "evaluation_status"),
}

SPLITS = ("train", "val", "test")

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
