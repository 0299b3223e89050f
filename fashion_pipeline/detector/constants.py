"""The detector's names and numbers, free of torch so the Dagster code location loads light."""

# The thesis's three backbones (section 4.2), in the thesis's order.
THESIS_BACKBONES = ("resnet50", "resnet101", "resnext101_32x8d")
# A lighter backbone that trains within the 2-core CPU demo budget; not in the thesis.
DEMO_BACKBONE = "resnet18"
BACKBONES = THESIS_BACKBONES + (DEMO_BACKBONE,)

# Detector labels (ARCHITECTURE.md): 0 is background.
CLASS_NAMES = {1: "upper", 2: "lower", 3: "full"}
NUM_CLASSES = len(CLASS_NAMES) + 1

# COCOeval.stats order; also the rows of the thesis's Table 5.1.
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
METRIC_ROWS = {  # key: (metric, IoU, area, max detections)
    "AP": ("Average Precision", "0.50:0.95", "All", 100),
    "AP50": ("Average Precision", "0.50", "All", 100),
    "AP75": ("Average Precision", "0.75", "All", 100),
    "APs": ("Average Precision", "0.50:0.95", "Small", 100),
    "APm": ("Average Precision", "0.50:0.95", "Medium", 100),
    "APl": ("Average Precision", "0.50:0.95", "Large", 100),
    "AR1": ("Recall", "0.50:0.95", "All", 1),
    "AR10": ("Recall", "0.50:0.95", "All", 10),
    "AR100": ("Recall", "0.50:0.95", "All", 100),
    "ARs": ("Recall", "0.50:0.95", "Small", 100),
    "ARm": ("Recall", "0.50:0.95", "Medium", 100),
    "ARl": ("Recall", "0.50:0.95", "Large", 100),
}
