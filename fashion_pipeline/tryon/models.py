"""Trained try-on models as report methods (``baselines.Method``): ``viton`` (GMM + TOM), ``viton_warp`` (the GMM's
warp pasted, no TOM), ``encoder_decoder`` and ``cagan``.

A model may be trained at a smaller size than the pairs it is scored on (the demo trains the GMM and CAGAN at
64 x 48 and scores at 128 x 96, to fit its CPU budget; with ``render_height`` the TOM and the encoder-decoder
have their own size). The inputs are then shrunk to each module's size, and the outputs are put back at the
pair's size as each architecture allows:
- the TPS is a smooth function in [-1, 1] coordinates, so the GMM's predicted control points are evaluated at the
  full size and the product is sampled there: the warped garment is as sharp as the product picture;
- the TOM's rendered person and mask, the encoder-decoder's picture and CAGAN's alpha and x_tilde are enlarged
  (bilinear); the composition (alpha * c' + (1 - alpha) * I' and CAGAN's alpha * x_tilde + (1 - alpha) * x_i)
  is done at the full size, with the full-size warped product and person; with the agnostic image, the
  pixels it shows are the full-size person's (``tom.keep_shown``, as in training).

Extra per-pair numbers (scores against the truth, computed after the output, never used to make it):
``mask_iou`` (the warped product mask > 0.5 against the true worn garment), ``warp_error_px`` (the warp's mean
end-point error against the true deformation over the true garment, in product pixels at the pair's size),
``alpha_iou`` (CAGAN's alpha > 0.5 against the changed region), ``ssim_garment`` (SSIM inside the true garment).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fashion_pipeline.synthetic.parse import UPPER_GARMENT_IDS
from fashion_pipeline.tryon import baselines, metrics, warp as warp_module
from fashion_pipeline.tryon.layout import Sample

DESCRIPTIONS = {
    "viton": "CP-VTON-style: learned TPS warp (GMM) + try-on module composing it (alpha * c' + (1 - alpha) * I')",
    "viton_warp": "the GMM's learned TPS warp, pasted onto the upper-body parts (no try-on module)",
    "encoder_decoder": "U-Net from the agnostic person and the unwarped product to the picture (no warp, no composition)",
    "cagan": "CAGAN: U-Net (x_i, y_i, y_j) -> (alpha, x_tilde), alpha * x_tilde + (1 - alpha) * x_i, trained unpaired",
}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def _resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def _resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    if labels.shape[:2] == (height, width):
        return labels
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST))


class Predictor:
    """A ``model.pt`` on the CPU (or ``device``), run one pair at a time."""

    def __init__(self, path: str | Path, device="cpu", cloth_root: Path | None = None):
        import torch

        from fashion_pipeline.tryon import train

        self.torch = torch
        self.modules, saved = train.load_model(path, device)
        self.method, self.device = saved["method"], device
        self.height, self.width = saved["height"], saved["width"]  # the first stage's (the GMM's for viton)
        self.config = train.TrainConfig(**saved["config"])
        render = {"viton": "tom", "encoder_decoder": "encoder_decoder"}.get(self.method)
        # the TOM's / encoder-decoder's own size and settings (the same as the above unless render_height was set)
        self.render_config = train.TrainConfig(**saved.get("stage_configs", {}).get(render, saved["config"]))
        self.render_size = tuple(saved.get("sizes", {}).get(render, (self.height, self.width)))
        self._tps = {}
        self.cloth_root = cloth_root  # the dataset root: CAGAN needs the person's own product (cloth/<person>)

    def _batch(self, sample: Sample, cloth: np.ndarray | None = None, render: bool = False):
        """The pair as a batch of one at the first stage's size, or (``render``) the TOM's / encoder-decoder's."""
        from fashion_pipeline.tryon import inputs

        torch = self.torch
        h, w = self.render_size if render else (self.height, self.width)
        config = self.render_config if render else self.config
        big_h, big_w = sample.person.shape[:2]
        keypoints = sample.keypoints.copy()
        keypoints[:, 0] *= w / big_w
        keypoints[:, 1] *= h / big_h
        tensors = {"person": _resize_rgb(sample.person, h, w)[None], "parse": _resize_labels(sample.parse, h, w)[None],
                   "keypoints": keypoints[None].astype(np.float32),
                   "cloth": _resize_rgb(sample.cloth if cloth is None else cloth, h, w)[None],
                   "cloth_mask": _resize_labels(sample.cloth_mask.astype(np.uint8), h, w)[None]}
        device_tensors = {k: torch.from_numpy(np.array(v)).to(self.device) for k, v in tensors.items()}  # a writable copy
        from fashion_pipeline.tryon.train import dilate

        return inputs.batch(device_tensors, torch.zeros(1, dtype=torch.long, device=self.device), config.radius,
                            dilate(config, h))

    def _keep_full(self, sample: Sample):
        """The agnostic image's shown region at the pair's size (None without the agnostic image)."""
        from fashion_pipeline.tryon import inputs
        from fashion_pipeline.tryon.train import dilate

        height = sample.person.shape[0]
        if not dilate(self.config, height):
            return None
        parse = self.torch.from_numpy(np.array(sample.parse)).to(self.device)[None]
        return 1.0 - inputs.hidden_region(parse, dilate(self.config, height))

    def _full(self, image: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    def _up(self, tensor, height: int, width: int):
        from torch.nn import functional as F

        if tensor.shape[-2:] == (height, width):
            return tensor
        return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)

    def _grid(self, theta, height: int, width: int):
        """The GMM's TPS evaluated at any size (its matrix solved once per size)."""
        from fashion_pipeline.tryon import gmm

        if (height, width) not in self._tps:
            self._tps[height, width] = gmm.TpsGrid(height, width, self.config.grid_size).to(self.device)
        return self._tps[height, width](theta)

    def warp(self, sample: Sample):
        """The GMM's warp at the pair's size: (warped product N x 3 x H x W, warped mask, grid 1 x H x W x 2, the
        TOM's batch). Also keeps ``_small_warp``: the product warped at the TOM's size, what it was trained on."""
        from fashion_pipeline.tryon import gmm

        batch = self._batch(sample)
        height, width = sample.person.shape[:2]
        model = self.modules["gmm"]
        small_grid, theta = model(batch.agnostic, batch.cloth)
        if self.render_size != (self.height, self.width):
            batch = self._batch(sample, render=True)
            small_grid = self._grid(theta, *self.render_size)
        self._small_warp = gmm.warp(batch.cloth, small_grid, "border")
        grid = self._grid(theta, height, width)
        cloth = self._full(sample.cloth)
        mask = self.torch.from_numpy(sample.cloth_mask.astype(np.float32)).to(self.device)[None, None]
        return gmm.warp(cloth, grid, "border"), gmm.warp(mask, grid, "zeros"), grid, batch

    def run(self, sample: Sample) -> dict:
        """{"output": H x W x 3 uint8, "warped": H x W x 3 uint8 or None, "alpha": H x W float or None}."""
        from fashion_pipeline.tryon import inputs, tom

        with self.torch.no_grad():
            height, width = sample.person.shape[:2]
            if self.method == "viton":
                cloth, mask, grid, batch = self.warp(sample)
                rendered, alpha = self.modules["tom"].raw(batch.agnostic, self._small_warp, batch.shown)
                rendered, alpha_full = tom.keep_shown(self._up(rendered, height, width), self._up(alpha, height, width),
                                                      self._full(sample.person), self._keep_full(sample))
                output = tom.compose(rendered, alpha_full, cloth)
                return {"output": inputs.to_uint8(output)[0], "warped": inputs.to_uint8(cloth)[0],
                        "warped_mask": mask[0, 0].cpu().numpy(), "grid": grid[0], "alpha": alpha_full[0, 0].cpu().numpy()}
            if self.method == "encoder_decoder":
                batch = self._batch(sample, render=True)
                raw = self._up(self.modules["encoder_decoder"].raw(batch.agnostic, batch.cloth, batch.shown), height, width)
                output = tom.keep_shown(raw, None, self._full(sample.person), self._keep_full(sample))[0]
                return {"output": inputs.to_uint8(output)[0], "warped": None, "alpha": None}
            own = self._own_cloth(sample)
            batch = self._batch(sample)
            worn = inputs.unit(self.torch.from_numpy(_resize_rgb(own, self.height, self.width)[None]).to(self.device))
            _, alpha, image = self.modules["generator"](batch.person, worn, batch.cloth)
            alpha_full = self._up(alpha, height, width)
            output = alpha_full * self._up(image, height, width) + (1 - alpha_full) * self._full(sample.person)
            return {"output": inputs.to_uint8(output)[0], "warped": None, "alpha": alpha_full[0, 0].cpu().numpy()}

    def _own_cloth(self, sample: Sample) -> np.ndarray:
        if self.cloth_root is None:
            raise baselines.MethodUnavailable("cagan needs the dataset root to read the person's own garment")
        path = Path(self.cloth_root) / sample.pair.split / "cloth" / sample.pair.person
        if not path.is_file():
            raise baselines.MethodUnavailable(f"cagan needs the person's own garment {path} (y_i); it is missing")
        height, width = sample.person.shape[:2]
        return np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.Resampling.BICUBIC))


def scores(sample: Sample, result: dict, method: str) -> dict:
    """The per-pair extras against the truth (synthetic sets); empty without it."""
    if sample.truth is None or sample.truth_parse is None:
        return {}
    garment = np.isin(sample.truth_parse, UPPER_GARMENT_IDS)
    extras = {"ssim_garment": metrics.ssim(result["output"], sample.truth, garment)}
    if result.get("warped_mask") is not None:
        extras["mask_iou"] = iou(result["warped_mask"] >= 0.5, garment)
        if sample.truth_warp is not None and garment.any():
            extras["warp_error_px"] = warp_error(result["grid"], sample, garment)
    if method == "cagan" and result.get("alpha") is not None:
        changed = metrics.changed_region(sample.parse, sample.truth_parse, UPPER_GARMENT_IDS)
        extras["alpha_iou"] = iou(result["alpha"] >= 0.5, changed)
    return extras


def warp_error(grid, sample: Sample, region: np.ndarray) -> float:
    """Mean distance between where the learned and the true warp send the region's pixels (product pixels)."""
    from fashion_pipeline.tryon import gmm

    height, width = region.shape
    pixels = gmm.grid_to_pixels(grid, height, width).cpu().numpy()  # H x W x 2 (x, y)
    ys, xs = np.nonzero(region)
    truth = warp_module.Warp(sample.truth_warp["person_points"], sample.truth_warp["cloth_points"])
    expected = truth(np.stack([xs, ys], axis=1).astype(np.float64))
    return float(np.hypot(*(pixels[ys, xs] - expected).T).mean())


def _paste_warp(sample: Sample, result: dict) -> np.ndarray:
    body = np.isin(sample.parse, (*UPPER_GARMENT_IDS, *baselines.COVERABLE_IDS))
    where = (result["warped_mask"] >= 0.5) & body
    return np.where(where[..., None], result["warped"], sample.person).astype(np.uint8)


def method(name: str, predictor: Predictor) -> baselines.Method:
    """A report method backed by a trained predictor (``viton_warp`` reuses the viton model's GMM)."""
    def run(sample: Sample):
        result = predictor.run(sample)
        if name == "viton_warp":
            result = {**result, "output": _paste_warp(sample, result)}
        return result["output"], scores(sample, result, name)

    run.predictor = predictor  # the comparison's grids also show the warped garment
    return baselines.Method(name, DESCRIPTIONS[name], run)


def register(models: dict[str, str | Path], cloth_root: Path | None = None, device="cpu") -> list[str]:
    """Register (or replace) the methods of the given trained models: {"viton": model.pt, ...}; returns their names."""
    names = []
    for model_method, path in models.items():
        predictor = Predictor(path, device, cloth_root)
        if predictor.method != model_method:
            raise ValueError(f"{path} holds a {predictor.method} model, not {model_method}")
        for name in (("viton", "viton_warp") if model_method == "viton" else (model_method,)):
            baselines.METHODS.pop(name, None)
            baselines.register(method(name, predictor))
            names.append(name)
    return names
