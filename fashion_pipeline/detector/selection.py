"""Pick the best trained backbone from ``<data_root>/fashion_detector/*/metrics.json``.

Selection rule, in order:

1. higher COCO AP (AP@[.50:.95], the thesis's primary metric), compared at 4 decimals,
   since smaller differences are evaluation noise;
2. on a tie, higher AP50;
3. still tied, fewer parameters (cheaper for the cropping stage downstream);
4. still tied, the thesis's order: resnet50, resnet101, resnext101_32x8d, then the demo's resnet18.

A backbone counts only when both its ``metrics.json`` and its ``model_final.pt`` exist.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from fashion_pipeline.common.atomic import write_json
from fashion_pipeline.detector.evaluate import METRIC_KEYS
from fashion_pipeline.detector.model import BACKBONES
from fashion_pipeline.detector.report import DISPLAY_NAMES, table_5_1

BACKBONE_ORDER = {name: position for position, name in enumerate(BACKBONES)}


class NoTrainedDetector(RuntimeError):
    pass


def read_candidates(detector_root: Path) -> list[dict]:
    """One metrics dict per backbone folder that holds a finished training."""
    candidates = []
    for metrics_path in sorted(Path(detector_root).glob("*/metrics.json")):
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{metrics_path}:{error.lineno}: not valid JSON ({error.msg})") from error
        missing = [key for key in ("AP", "AP50", "checkpoint", "backbone") if key not in metrics]
        if missing:
            raise ValueError(f"{metrics_path}: missing {missing}; rematerialize that partition")
        if Path(metrics["checkpoint"]).is_file():
            candidates.append(metrics)
    return candidates


def selection_key(metrics: dict) -> tuple:
    return (-round(metrics["AP"], 4), -metrics["AP50"], metrics.get("parameters", 0),
            BACKBONE_ORDER.get(metrics["backbone"], len(BACKBONE_ORDER)), metrics["backbone"])


def rank_candidates(candidates: list[dict]) -> list[dict]:
    return sorted(candidates, key=selection_key)


def pick_best(candidates: list[dict], detector_root: Optional[Path] = None) -> dict:
    if not candidates:
        where = f" under {detector_root}" if detector_root else ""
        raise NoTrainedDetector(f"no trained detector{where} (no <backbone>/metrics.json with its model_final.pt): "
                                "materialize at least one fashion_detector partition first")
    return rank_candidates(candidates)[0]


def best_record(best: dict, ranked: list[dict]) -> dict:
    """What ``best_detector/best.json`` holds: the winner, its numbers, and the ranking."""
    record = {"backbone": best["backbone"], "checkpoint": str(Path(best["checkpoint"]).resolve())}
    record.update({key: best[key] for key in METRIC_KEYS})
    record.update({key: value for key, value in best.items() if key.startswith("AP_")})
    record.update({"pretrained": best.get("pretrained"), "parameters": best.get("parameters"),
                   "ranking": [m["backbone"] for m in ranked], "rule": "AP (4 d.p.) > AP50 > fewer parameters > thesis order"})
    return record


def comparison_table(ranked: list[dict]) -> str:
    return table_5_1({DISPLAY_NAMES.get(m["backbone"], m["backbone"]): m for m in ranked})


def select(detector_root: Path, output_path: Optional[Path] = None) -> tuple[dict, list[dict]]:
    ranked = rank_candidates(read_candidates(detector_root))
    best = pick_best(ranked, detector_root)
    record = best_record(best, ranked)
    if output_path is not None:
        write_json(output_path, record, indent=2)
    return record, ranked


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("detector_root", help="<data_root>/fashion_detector")
    parser.add_argument("--output", help="write best.json here")
    args = parser.parse_args(argv)
    record, ranked = select(Path(args.detector_root), Path(args.output) if args.output else None)
    print(comparison_table(ranked))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
