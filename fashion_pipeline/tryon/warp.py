"""Non-parametric garment warping: shape-context matching of two outlines, then a thin-plate spline.

Seed 003's "non-parametric warped synthesis" (VITON's baseline): the product's mask outline and the
person's garment-region outline are matched point to point with shape contexts (Belongie, Malik and
Puzicha 2002: log-polar histograms of where the other outline points lie, compared by chi-square, matched
one-to-one by the Hungarian method), a TPS through the matches maps the person's frame into the product's,
and the product is sampled there.

The TPS is scipy's ``RBFInterpolator`` with the thin-plate kernel and a linear term: the classical TPS.
kornia's ``warp_image_tps`` was not used (kornia is not installed here, and a measurement noted in the
issue found its kernel to differ from the classical one); scikit-image's ``ThinPlateSplineTransform``
agrees with ours to 3e-4 px (it solves in float32), a direct float64 solve of
Bookstein's system to 1e-8 (``fashion_pipeline_tests/test_tryon_metrics.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from fashion_pipeline.synthetic.tryon import fit_tps, sample

RADIAL_BINS, ANGLE_BINS = 5, 12


@dataclass(frozen=True)
class MatchSettings:
    points: int = 60  # outline samples per shape
    position_weight: float = 0.3  # adds the distance of normalised positions to the shape-context cost
    smoothing: float = 20.0  # TPS regularisation (0 interpolates every match, mismatches included; 20 measured best of 2, 20, 100)


def outline(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` points (x, y) spaced evenly along the largest outer contour of ``mask``."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ValueError("empty mask: no outline to match")
    contour = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    closed = np.vstack([contour, contour[:1]])
    steps = np.hypot(*np.diff(closed, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.linspace(0.0, arc[-1], count, endpoint=False)
    return np.stack([np.interp(targets, arc, closed[:, 0]), np.interp(targets, arc, closed[:, 1])], axis=1)


def shape_contexts(points: np.ndarray) -> np.ndarray:
    """N x (RADIAL_BINS * ANGLE_BINS) normalised log-polar histograms, distances relative to their mean."""
    delta = points[None, :, :] - points[:, None, :]
    distance = np.hypot(delta[..., 0], delta[..., 1])
    mean = distance[distance > 0].mean()
    log_r = np.log(np.maximum(distance / mean, 1e-12))
    edges = np.linspace(np.log(0.125), np.log(2.0), RADIAL_BINS + 1)
    r_bin = np.digitize(log_r, edges) - 1
    theta = np.mod(np.arctan2(delta[..., 1], delta[..., 0]), 2 * np.pi)
    t_bin = np.minimum((theta / (2 * np.pi) * ANGLE_BINS).astype(int), ANGLE_BINS - 1)
    valid = (r_bin >= 0) & (r_bin < RADIAL_BINS) & ~np.eye(len(points), dtype=bool)
    histograms = np.zeros((len(points), RADIAL_BINS * ANGLE_BINS))
    rows = np.nonzero(valid)[0]
    np.add.at(histograms, (rows, r_bin[valid] * ANGLE_BINS + t_bin[valid]), 1.0)
    return histograms / np.maximum(histograms.sum(axis=1, keepdims=True), 1.0)


def _normalised(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    return centred / np.hypot(*centred.T).mean()


def match(a: np.ndarray, b: np.ndarray, position_weight: float = MatchSettings.position_weight) -> np.ndarray:
    """Index into ``b`` for every point of ``a`` (one-to-one): chi-square shape-context cost + position term."""
    ha, hb = shape_contexts(a), shape_contexts(b)
    numerator = (ha[:, None, :] - hb[None, :, :]) ** 2
    denominator = ha[:, None, :] + hb[None, :, :]
    cost = 0.5 * np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0).sum(axis=2)
    na, nb = _normalised(a), _normalised(b)
    cost = cost + position_weight * np.hypot(*(na[:, None, :] - nb[None, :, :]).transpose(2, 0, 1))
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(a), np.int64)
    order[rows] = cols
    return order


@dataclass(frozen=True)
class Warp:
    """A backward map: ``cloth_points(person_xy)`` gives where in the product each person pixel samples."""

    person_points: np.ndarray
    cloth_points: np.ndarray
    smoothing: float = 0.0

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return fit_tps(self.person_points, self.cloth_points, self.smoothing)(xy)


def estimate(cloth_mask: np.ndarray, region: np.ndarray, settings: MatchSettings = MatchSettings()) -> Warp:
    """The warp taking the person's garment ``region`` onto the product's ``cloth_mask`` outline."""
    person = outline(region, settings.points)
    cloth = outline(cloth_mask, settings.points)
    return Warp(person, cloth[match(person, cloth, settings.position_weight)], settings.smoothing)


def apply(warp: Warp, cloth: np.ndarray, cloth_mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The product resampled into the person's frame: (H x W x 3 float image, H x W float mask in [0, 1])."""
    ys, xs = np.mgrid[0:height, 0:width]
    coords = warp(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64))
    image = sample(cloth, coords).reshape(height, width, 3)
    mask = sample(cloth_mask[..., None].astype(np.float32), coords).reshape(height, width)
    inside = (coords[:, 0] >= 0) & (coords[:, 0] <= width - 1) & (coords[:, 1] >= 0) & (coords[:, 1] <= height - 1)
    return image, mask * inside.reshape(height, width)


def endpoint_error(estimated: Warp, truth: Warp, region: np.ndarray) -> float:
    """Mean distance (product-frame pixels) between where two warps send the pixels of ``region``."""
    ys, xs = np.nonzero(region)
    if not len(xs):
        return float("nan")
    xy = np.stack([xs, ys], axis=1).astype(np.float64)
    return float(np.hypot(*(estimated(xy) - truth(xy)).T).mean())
