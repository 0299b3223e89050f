"""Try-on methods the report scores: three baselines here; the models of the next issue register beside them.

A method takes a loaded ``layout.Sample`` (person, parse, keypoints, product and its mask) and returns the
person wearing the product, H x W x 3 uint8, plus a dict of extra per-pair numbers. A method may not read
the ground truth, except an oracle, which says so in its name and is only an upper bound.

- ``unchanged``: the input picture, as if nothing were tried on; the floor any method must beat.
- ``warped_paste``: seed 003's "non-parametric warped synthesis": shape-context matching between the product's
  mask and the person's current garment region, a TPS warp of the product, pasted where it lands.
- ``oracle_paste``: the product warped by the true deformation (synthetic sets only) and pasted into the true
  garment region: what warping and pasting alone can give at best (no shading, the old garment's uncovered
  pixels stay).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fashion_pipeline.synthetic.parse import CIHP, UPPER_GARMENT_IDS
from fashion_pipeline.tryon import warp
from fashion_pipeline.tryon.layout import Sample


COVERABLE_IDS = (CIHP["torso_skin"], CIHP["left_arm"], CIHP["right_arm"])


class MethodUnavailable(Exception):
    """The method cannot run on this sample (e.g. an oracle on a real set without a true warp)."""


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    run: Callable[[Sample], tuple[np.ndarray, dict]]
    oracle: bool = False


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"try-on method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def _unchanged(sample: Sample) -> tuple[np.ndarray, dict]:
    return sample.person.copy(), {}


def _paste(person: np.ndarray, product: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.where(where[..., None], np.clip(np.rint(product), 0, 255), person).astype(np.uint8)


def _warped_paste(sample: Sample, settings: warp.MatchSettings = warp.MatchSettings()) -> tuple[np.ndarray, dict]:
    region = np.isin(sample.parse, UPPER_GARMENT_IDS)
    if not region.any() or not sample.cloth_mask.any():
        return sample.person.copy(), {"warp_failed": 1.0}
    height, width = region.shape
    estimated = warp.estimate(sample.cloth_mask, region, settings)
    image, mask = warp.apply(estimated, sample.cloth, sample.cloth_mask, height, width)
    extras = {}
    if sample.truth_warp is not None and sample.truth_parse is not None:
        truth = warp.Warp(sample.truth_warp["person_points"], sample.truth_warp["cloth_points"])
        extras["warp_error_px"] = warp.endpoint_error(estimated, truth, np.isin(sample.truth_parse, UPPER_GARMENT_IDS))
    # only onto the body parts a top can cover (never the face, hair, trousers or background)
    body = np.isin(sample.parse, (*UPPER_GARMENT_IDS, *COVERABLE_IDS))
    return _paste(sample.person, image, (mask >= 0.5) & body), extras


def _oracle_paste(sample: Sample) -> tuple[np.ndarray, dict]:
    if sample.truth_warp is None or sample.truth_parse is None:
        raise MethodUnavailable("no true warp: oracle_paste needs a synthetic set")
    height, width = sample.parse.shape
    truth = warp.Warp(sample.truth_warp["person_points"], sample.truth_warp["cloth_points"])
    image, _ = warp.apply(truth, sample.cloth, sample.cloth_mask, height, width)
    return _paste(sample.person, image, np.isin(sample.truth_parse, UPPER_GARMENT_IDS)), {}


register(Method("unchanged", "the input picture unchanged", _unchanged))
register(Method("warped_paste", "shape-context matching + TPS warp + paste (non-parametric)", _warped_paste))
register(Method("oracle_paste", "true warp pasted into the true garment region (upper bound; uses the truth)",
                _oracle_paste, oracle=True))
BASELINES = ("unchanged", "warped_paste", "oracle_paste")
