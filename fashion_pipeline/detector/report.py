"""Tables and plots for the detector's metadata, free of Dagster so the CLI can build them too."""
from __future__ import annotations

from typing import Mapping

from fashion_pipeline.common.render import figure_markdown, markdown_table
from fashion_pipeline.detector.engine import LOSS_NAMES
from fashion_pipeline.detector.evaluate import METRIC_KEYS, METRIC_ROWS

# Table 5.1 of the thesis (DeepFashion val, 50k iterations on a Colab T4/P100).
THESIS_TABLE_5_1 = {
    "resnet50": dict(zip(METRIC_KEYS, (0.647, 0.890, 0.770, 0.031, 0.374, 0.672, 0.724, 0.752, 0.752, 0.097, 0.592, 0.768))),
    "resnet101": dict(zip(METRIC_KEYS, (0.663, 0.896, 0.787, 0.071, 0.393, 0.687, 0.737, 0.764, 0.764, 0.192, 0.611, 0.780))),
    "resnext101_32x8d": dict(zip(METRIC_KEYS, (0.635, 0.881, 0.758, 0.230, 0.374, 0.660, 0.720, 0.751, 0.751, 0.286, 0.604, 0.767))),
}
DISPLAY_NAMES = {"resnet50": "ResNet-50", "resnet101": "ResNet-101", "resnext101_32x8d": "ResNeXt-101", "resnet18": "ResNet-18 (demo)"}


def table_5_1(columns: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown in Table 5.1's layout: one row per COCO number, one column per model.

    The thesis labels its three Recall/All rows with IoU 0.50:0.95 / 0.50 / 0.75, but their values
    are COCO's AR at 1 / 10 / 100 detections; the ``Max dets`` column says which is which.
    """
    headers = ["Metric", "IoU", "Area", "Max dets", *columns]
    rows = []
    for key in METRIC_KEYS:
        metric, iou, area, max_dets = METRIC_ROWS[key]
        rows.append([metric, iou, area, max_dets, *(_cell(values.get(key)) for values in columns.values())])
    return markdown_table(headers, rows)


def _cell(value) -> str:
    if value is None:
        return "–"
    return "n/a" if value < 0 else f"{value:.3f}"


def comparison_with_thesis(backbone: str, metrics: Mapping[str, float]) -> str:
    name = DISPLAY_NAMES.get(backbone, backbone)
    columns = {f"{name} (this run)": metrics}
    if backbone in THESIS_TABLE_5_1:
        columns[f"{name} (thesis)"] = THESIS_TABLE_5_1[backbone]
    return table_5_1(columns)


def loss_curves_figure(history: list[dict]):
    """Total and per-term training loss per log window, with the learning rate on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    iterations = [window["iteration"] for window in history]
    axis.plot(iterations, [window["loss"] for window in history], label="total", linewidth=2, color="black")
    for name in LOSS_NAMES:
        axis.plot(iterations, [window[name] for window in history], label=name, linewidth=1)
    axis.set_xlabel("iteration")
    axis.set_ylabel("loss (window mean)")
    axis.set_yscale("log")
    axis.legend(fontsize=7, loc="upper right")
    lr_axis = axis.twinx()
    lr_axis.plot(iterations, [window["lr"] for window in history], color="grey", linestyle=":", label="lr")
    lr_axis.set_ylabel("learning rate", color="grey")
    figure.tight_layout()
    return figure


def figure_png(figure) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def loss_curves_markdown(history: list[dict]) -> str:
    if not history:
        return "_no training iterations in this run_"
    return figure_markdown(loss_curves_figure(history), alt="loss curves")


def pipes_metadata(metrics: dict) -> dict:
    """The materialization metadata, typed for Dagster Pipes (numbers as floats so the UI plots them)."""
    metadata = {key: {"raw_value": float(metrics[key]), "type": "float"} for key in METRIC_KEYS}
    for key, value in metrics.items():
        if key.startswith("AP_"):
            metadata[key] = {"raw_value": float(value), "type": "float"}
    metadata.update({
        "table_5_1": {"raw_value": comparison_with_thesis(metrics["backbone"], metrics), "type": "md"},
        "loss_curves": {"raw_value": loss_curves_markdown(metrics["history"]), "type": "md"},
        "final_loss": {"raw_value": float(metrics["final_loss"]), "type": "float"},
        "iterations": {"raw_value": int(metrics["iterations"]), "type": "int"},
        "training_seconds": {"raw_value": float(metrics["training_seconds"]), "type": "float"},
        "train_images_per_s": {"raw_value": float(metrics["train_images_per_s"]), "type": "float"},
        "inference_images_per_s": {"raw_value": float(metrics["inference_images_per_s"]), "type": "float"},
        "device": {"raw_value": metrics["device"], "type": "text"},
        "checkpoint": {"raw_value": metrics["checkpoint"], "type": "path"},
        "pretrained": {"raw_value": bool(metrics["pretrained"]), "type": "bool"},
        "weights_source": {"raw_value": metrics["weights_source"], "type": "text"},
        "parameters": {"raw_value": int(metrics["parameters"]), "type": "int"},
        "resumed_from_iteration": {"raw_value": int(metrics["resumed_from_iteration"]), "type": "int"},
        "train_json_sha256": {"raw_value": metrics["train_json_sha256"], "type": "text"},
        "val_json_sha256": {"raw_value": metrics["val_json_sha256"], "type": "text"},
    })
    return metadata
