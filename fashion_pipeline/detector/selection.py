"""Pick the best trained backbone.

Selection rule, in order:

1. higher COCO AP (AP@[.50:.95], the thesis's primary metric), compared at 4 decimals,
   since smaller differences are evaluation noise;
2. on a tie, higher AP50;
3. still tied, fewer parameters (cheaper for the cropping stage downstream);
4. still tied, the thesis's order: resnet50, resnet101, resnext101_32x8d, then the demo's resnet18.

Only backbones evaluated on the same validation set compete. The ``best_detector`` asset takes
the candidates from Dagster's record of ``fashion_detector`` and keeps those trained and evaluated
on the current ``deepfashion_coco``; this CLI reads each ``<detector_root>/<backbone>/metrics.json``
(else the newest published ``<backbone>/v/*/metrics.json``) and keeps those evaluated on the
``val.json`` it is given. Checkpoint paths are relative to the data root.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from fashion_pipeline.common import versions
from fashion_pipeline.common.atomic import write_json
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.detector.constants import BACKBONES, METRIC_KEYS

BACKBONE_ORDER = {name: position for position, name in enumerate(BACKBONES)}
REQUIRED_KEYS = ("AP", "AP50", "checkpoint", "backbone", "val_json_sha256")


class NoTrainedDetector(RuntimeError):
    pass


def read_candidates(detector_root: Path) -> list[dict]:
    """One metrics dict per backbone folder that holds a finished training (CLI use).

    A backbone folder is a trainer's ``--output-dir`` (``metrics.json`` in it) or a data root's
    ``fashion_detector/<backbone>`` (its newest published ``v/<version>/metrics.json``).
    ``checkpoint`` is rewritten relative to the data root (``detector_root``'s parent).
    """
    detector_root = Path(detector_root)
    candidates = []
    for metrics_path in _metrics_files(detector_root):
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{metrics_path}:{error.lineno}: not valid JSON ({error.msg})") from error
        missing = [key for key in REQUIRED_KEYS if key not in metrics]
        if missing:
            raise ValueError(f"{metrics_path}: missing {missing}; rematerialize that partition")
        checkpoint = metrics_path.parent / metrics["checkpoint"]
        if checkpoint.is_file():
            metrics["checkpoint"] = str(checkpoint.relative_to(detector_root.parent))
            candidates.append(metrics)
    return candidates


def _metrics_files(detector_root: Path) -> list[Path]:
    found = []
    for folder in sorted(p for p in detector_root.glob("*") if p.is_dir()):
        if (folder / "metrics.json").is_file():  # a trainer's --output-dir
            found.append(folder / "metrics.json")
            continue
        published = versions.latest_published(detector_root.parent, detector_root.name, folder.name,
                                              containing="metrics.json")
        if published is not None:
            found.append(published.file("metrics.json"))
    return found


def split_by_validation_set(candidates: list[dict], val_json_sha256: str) -> tuple[list[dict], list[dict]]:
    """(evaluated on this val set, evaluated on another one)."""
    same = [c for c in candidates if c.get("val_json_sha256") == val_json_sha256]
    other = [c for c in candidates if c.get("val_json_sha256") != val_json_sha256]
    return same, other


def selection_key(metrics: dict) -> tuple:
    return (-round(metrics["AP"], 4), -metrics["AP50"], metrics.get("parameters", 0),
            BACKBONE_ORDER.get(metrics["backbone"], len(BACKBONE_ORDER)), metrics["backbone"])


def rank_candidates(candidates: list[dict]) -> list[dict]:
    return sorted(candidates, key=selection_key)


def pick_best(candidates: list[dict], where: str = "") -> dict:
    if not candidates:
        raise NoTrainedDetector(f"no trained detector{where}: materialize at least one fashion_detector partition "
                                "on the current deepfashion_coco first")
    return rank_candidates(candidates)[0]


def best_record(best: dict, ranked: list[dict]) -> dict:
    """What ``best_detector/best.json`` holds: the winner, its numbers, and the ranking."""
    record = {"backbone": best["backbone"], "checkpoint": best["checkpoint"]}
    record.update({key: best[key] for key in METRIC_KEYS if key in best})
    record.update({key: value for key, value in best.items() if key.startswith("AP_")})
    record.update({"pretrained": best.get("pretrained"), "parameters": best.get("parameters"),
                   "val_json_sha256": best.get("val_json_sha256"), "train_json_sha256": best.get("train_json_sha256"),
                   "ranking": [m["backbone"] for m in ranked], "rule": "AP (4 d.p.) > AP50 > fewer parameters > thesis order"})
    return record


def comparison_table(ranked: list[dict]) -> str:
    from fashion_pipeline.detector.report import DISPLAY_NAMES, table_5_1

    return table_5_1({DISPLAY_NAMES.get(m["backbone"], m["backbone"]): m for m in ranked})


def select(candidates: list[dict], output_path: Optional[Path] = None, where: str = "") -> tuple[dict, list[dict]]:
    ranked = rank_candidates(candidates)
    best = pick_best(ranked, where)
    record = best_record(best, ranked)
    if output_path is not None:
        write_json(output_path, record, indent=2)
    return record, ranked


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("detector_root", help="<data_root>/fashion_detector")
    parser.add_argument("--val-json", required=True, help="only backbones evaluated on this file compete")
    parser.add_argument("--output", help="write best.json here")
    args = parser.parse_args(argv)
    same, other = split_by_validation_set(read_candidates(Path(args.detector_root)), file_sha256(args.val_json))
    for metrics in other:
        print(f"left out: {metrics['backbone']} was evaluated on another val.json")
    record, ranked = select(same, Path(args.output) if args.output else None, where=f" under {args.detector_root}")
    print(comparison_table(ranked))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
