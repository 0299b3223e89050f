"""Train a try-on model on a VITON-HD-layout dataset's train split: ``viton`` (CP-VTON's GMM, then its TOM on the
GMM's warps), ``encoder_decoder`` (the baseline without the warp) or ``cagan``. Resumable, torchrun-ready,
reporting through Dagster Pipes when an asset launched it (``tryon/model_assets.py``), like ``gan/dcgan.py``.

- Resume: each stage writes ``checkpoint_<stage>.pt`` every ``checkpoint_every`` steps (atomically): the
  models, optimisers, step, history, the batch-order and torch RNG states, the training set's fingerprint and
  the stage's architecture (config and world size). A checkpoint of other data or settings is ignored (fresh
  start); one written by another number of processes is refused (``ResumeRefused``, exit 2), because the
  batch is per process. Raising the step count continues a finished stage.
- More processes (``torchrun --nproc-per-node N``): every rank draws the same global batch order and trains its
  slice; gradients are averaged with one all-reduce per optimiser step (no DDP wrapper: CAGAN runs G three
  times and D four times per step), weighted by the slice's share of the batch. BatchNorm (GMM, CAGAN's D)
  normalises per rank. The losses are averaged over the ranks before the finiteness check, so all ranks stop
  together (``TrainingDiverged``, exit 2). ``--inject-nan RANK:STEP`` poisons one rank's loss to test it.
- Learning rate: constant for ``constant_fraction`` of a stage's steps, then linearly to 0 (CP-VTON's schedule).
- Sizes: every stage trains at ``--height``, unless ``render_height`` is set: the TOM and the encoder-decoder
  then train on the pairs read at that height, the TOM's warp being the frozen GMM's TPS (predicted at
  ``--height``) evaluated at the larger size, as ``tryon.models`` does when it scores.

``python -m fashion_pipeline.tryon.train --root /tmp/tryon --height 128 --out /tmp/viton --method viton --steps 300``
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from fashion_pipeline.common import atomic
from fashion_pipeline.common.device import pick_device
from fashion_pipeline.tryon import cagan, gmm, inputs, tom
from fashion_pipeline.common.fingerprint import combine
from fashion_pipeline.tryon.model_settings import (
    HISTORY_NAME, MODEL_NAME, RENDER_STAGES, TrainConfig, checkpoint_name,
)


class TrainingDiverged(RuntimeError):
    """A loss (averaged over the ranks) is not finite."""


class ResumeRefused(RuntimeError):
    """The checkpoint was written by another number of processes."""


def _process_group() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def resolved(config: TrainConfig, height: int) -> TrainConfig:
    """The config with the size-dependent defaults filled in (num_downs, radius)."""
    return dataclasses.replace(config, num_downs=config.num_downs or tom.default_num_downs(height),
                               radius=config.radius or inputs.pose_radius(height))


def build_models(config: TrainConfig, stage: str, height: int, width: int) -> dict:
    """The stage's modules, seeded (every rank builds the same weights)."""
    torch.manual_seed(config.seed)
    if stage == "gmm":
        return {"gmm": gmm.GMM(inputs.AGNOSTIC_CHANNELS, height, width, config.grid_size, config.ngf, config.max_channels)}
    tom.check_unet_size(height, width, config.num_downs)
    if stage == "tom":
        return {"tom": tom.TryOnModule(config.num_downs, config.ngf, config.agnostic_image)}
    if stage == "encoder_decoder":
        return {"encoder_decoder": tom.EncoderDecoder(config.num_downs, config.ngf, config.agnostic_image)}
    if stage == "cagan":
        return {"generator": cagan.Generator(config.num_downs, config.ngf), "discriminator": cagan.Discriminator(config.ndf)}
    raise ValueError(f"unknown stage {stage!r}")


def dilate(config: TrainConfig, height: int) -> int:
    """The agnostic image's dilation at this height (0: no agnostic image)."""
    return inputs.agnostic_dilate(height) if config.agnostic_image else 0


def linear_decay(total: int, constant_fraction: float) -> Callable[[int], float]:
    keep = int(total * constant_fraction)
    return lambda step: 1.0 - max(0, step - keep) / float(total - keep + 1)


class Stage:
    """One stage's models, optimisers, data and RNG; ``step()`` runs one optimiser step (all ranks)."""

    def __init__(self, stage: str, arrays: inputs.Arrays, config: TrainConfig, device: torch.device, rank: int,
                 world_size: int, frozen: Optional[dict] = None, inject_nan: Optional[tuple[int, int]] = None,
                 gmm_input: Optional[tuple[inputs.Arrays, TrainConfig]] = None):
        """``gmm_input``: the TOM's frozen GMM sees these arrays (same pairs, its own size) with its config."""
        self.name, self.config, self.device = stage, config, device
        self.rank, self.world_size, self.inject_nan = rank, world_size, inject_nan
        height, width = arrays.size
        self.models = {k: m.to(device) for k, m in build_models(config, stage, height, width).items()}
        self.frozen = frozen or {}
        self.total_steps = config.stage_steps(stage)
        betas = (config.beta1, config.beta2)
        groups = {"discriminator": ["discriminator"]} if stage == "cagan" else {}
        trained = [k for k in self.models if k not in groups.get("discriminator", [])]
        self.optimizers = {"main": torch.optim.Adam([p for k in trained for p in self.models[k].parameters()],
                                                    lr=config.learning_rate(), betas=betas)}
        if stage == "cagan":
            self.optimizers["discriminator"] = torch.optim.Adam(self.models["discriminator"].parameters(),
                                                                lr=config.learning_rate(), betas=betas)
        decay = linear_decay(self.total_steps, config.constant_fraction)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, decay) for k, o in self.optimizers.items()}
        self.losses = tom.TryOnLosses(config.l1, config.ssim, config.vgg, config.vgg_weights, device, config.hidden_weight)
        self.data = inputs.device_tensors(arrays, device)
        self.gmm_data = self.gmm_config = self.tps = None
        if gmm_input is not None and gmm_input[0].size != arrays.size:
            self.gmm_data, self.gmm_config = inputs.device_tensors(gmm_input[0], device), gmm_input[1]
            self.tps = gmm.TpsGrid(height, width, gmm_input[1].grid_size).to(device)
        self.count = len(arrays)
        self.order_rng = torch.Generator().manual_seed(config.seed)
        self.steps_done = 0  # in this run, for --inject-nan

    @property
    def loss_names(self) -> list[str]:
        if self.name == "gmm":
            return ["L1 (warped product vs worn garment)"] + (["L1 (warped mask vs worn mask)"] if self.config.warp_mask else [])
        if self.name == "cagan":
            return ["GAN (non-saturating, D on image-garment pairs)", "alpha L1", "cycle L1"]
        names = list(self.losses.names)
        if self.name == "tom":
            names += ["-lambda_warp |alpha|", "lambda_TV |grad alpha|"]
            names += ["L1(alpha, warped mask)"] if self.config.alpha_to_warp_mask else []
        return names

    def _slice(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This rank's indices of the global batch, the partners (CAGAN's y_j), and the slice's share."""
        size = min(self.config.batch_size * self.world_size, self.count)
        index = torch.randperm(self.count, generator=self.order_rng)[:size]
        partner = (index + torch.randint(1, self.count, (size,), generator=self.order_rng)) % self.count
        lo, hi = size * self.rank // self.world_size, size * (self.rank + 1) // self.world_size
        return index[lo:hi].to(self.device), partner[lo:hi].to(self.device), (hi - lo) / size

    def step(self) -> dict:
        index, partner, share = self._slice()
        for model in self.models.values():
            model.train()
        batch = inputs.batch(self.data, index, self.config.radius, dilate(self.config, self.data["person"].shape[1]))
        self._index = index
        if self.name == "cagan":
            stats = self._cagan_step(batch, inputs.unit(self.data["cloth"][partner]), share)
        else:
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            losses = getattr(self, f"_{self.name}_loss")(batch)
            total = losses["total"] = self._poison(losses["total"])
            total.backward()
            self._average_gradients(self.optimizers["main"], share)
            self.optimizers["main"].step()
            stats = {k: v.detach() for k, v in losses.items()}
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.steps_done += 1
        return self._reduce(stats, share)

    def _poison(self, loss):
        if self.inject_nan == (self.rank, self.steps_done):
            return loss * float("nan")  # what a numerical blow-up on this rank looks like
        return loss

    def _gmm_loss(self, batch) -> dict:
        grid, _ = self.models["gmm"](batch.agnostic, batch.cloth)
        warped = gmm.warp(batch.cloth, grid, "border")
        picture = F.l1_loss(warped, batch.worn)
        losses = {"warp_l1": picture}
        total = picture
        if self.config.warp_mask:
            mask = gmm.warp(batch.cloth_mask, grid, "zeros")
            losses["mask_l1"] = F.l1_loss(mask, batch.worn_mask)
            total = total + self.config.warp_mask * losses["mask_l1"]
        return {**losses, "total": total}

    def warped(self, batch):
        """The frozen GMM's warp of the batch's product (at the GMM's size, or its TPS evaluated at this stage's)."""
        with torch.no_grad():
            model = self.frozen["gmm"].eval()
            if self.gmm_data is None:
                grid, _ = model(batch.agnostic, batch.cloth)
            else:
                small = inputs.batch(self.gmm_data, self._index, self.gmm_config.radius)
                grid = self.tps(model(small.agnostic, small.cloth)[1])
            return gmm.warp(batch.cloth, grid, "border"), gmm.warp(batch.cloth_mask, grid, "zeros")

    def _tom_loss(self, batch) -> dict:
        cloth, mask = self.warped(batch)
        output, _, alpha = self.models["tom"](batch.agnostic, cloth, batch.shown, batch.keep)
        picture = self.losses(output, batch.person, batch.hidden)
        reward, smooth = alpha.mean(), tom.total_variation(alpha)
        total = picture - self.config.alpha_reward * reward + self.config.alpha_tv * smooth
        losses = {"picture": picture, "alpha_mean": reward, "alpha_tv": smooth}
        if self.config.alpha_to_warp_mask:
            losses["alpha_mask_l1"] = F.l1_loss(alpha, mask)
            total = total + self.config.alpha_to_warp_mask * losses["alpha_mask_l1"]
        return {**losses, "total": total}

    def _encoder_decoder_loss(self, batch) -> dict:
        output = self.models["encoder_decoder"](batch.agnostic, batch.cloth, batch.shown, batch.keep)
        picture = self.losses(output, batch.person, batch.hidden)
        return {"picture": picture, "total": picture}

    def _cagan_step(self, batch, wanted, share: float) -> dict:
        g, d = self.models["generator"], self.models["discriminator"]
        person, worn = batch.person, batch.cloth
        fake, alpha, _ = g(person, worn, wanted)
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["main"]
        opt_d.zero_grad(set_to_none=True)
        loss_d = self._poison(cagan.discriminator_loss(d, person, worn, wanted, fake))
        loss_d.backward(inputs=list(d.parameters()))
        self._average_gradients(opt_d, share)
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        losses = cagan.generator_losses(g, d, person, worn, wanted, fake, alpha, self.config.gamma_id, self.config.gamma_cyc)
        losses["total"].backward(inputs=list(g.parameters()))
        self._average_gradients(opt_g, share)
        opt_g.step()
        return {"loss_d": loss_d.detach(), **{k: v.detach() for k, v in losses.items()}}

    def _average_gradients(self, optimizer, share: float) -> None:
        if self.world_size == 1:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params]).mul_(share)
        torch.distributed.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def _reduce(self, stats: dict, share: float) -> dict:
        names = sorted(stats)
        values = torch.stack([stats[k].float() for k in names])
        if self.world_size > 1:
            values = values * share
            torch.distributed.all_reduce(values)
        return dict(zip(names, values.cpu().tolist()))

    # -- checkpoints

    def state(self) -> dict:
        return {"models": {k: m.state_dict() for k, m in self.models.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "order_rng": self.order_rng.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_state(self, state: dict) -> None:
        for k, m in self.models.items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.order_rng.set_state(state["order_rng"].to("cpu", torch.uint8))
        torch.set_rng_state(state["torch_rng"].to("cpu", torch.uint8))
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].to("cpu", torch.uint8), self.device)


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").clone()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj


def _try_resume(stage: Stage, path: Path, config: TrainConfig, fingerprint: str, log) -> tuple[int, list]:
    if not path.exists():
        return 0, []
    state = torch.load(path, map_location=stage.device, weights_only=False)
    saved = state.get("architecture") or {}
    if state.get("fingerprint") != fingerprint:
        log(f"{path} was trained on other data; stage {stage.name} starts again from step 0")
        return 0, []
    saved_world = saved.get("world_size", 1)
    if saved_world != stage.world_size and saved == config.architecture(stage.name, saved_world):
        raise ResumeRefused(
            f"{path} (step {state['step']}) was trained by {saved_world} process(es); this run has {stage.world_size}. "
            f"The batch is per process, so another count changes what each step sees. Resume with "
            f"nproc_per_node={saved_world}, or start again (asset config resume: false, or delete the checkpoint).")
    if saved != config.architecture(stage.name, stage.world_size):
        log(f"{path} was trained with other settings; stage {stage.name} starts again from step 0")
        return 0, []
    stage.load_state(state)
    return int(state["step"]), list(state["history"])


def _check_finite(stats: dict, stage: str, step: int, world_size: int, checkpoint: Path) -> None:
    if not all(math.isfinite(v) for v in stats.values()):
        averaged = f" (averaged over {world_size} processes)" if world_size > 1 else ""
        raise TrainingDiverged(f"non-finite loss in stage {stage} at step {step}{averaged}: "
                               f"{ {k: round(v, 5) for k, v in stats.items()} }; the last good state is {checkpoint} (if written)")


@dataclass
class StageResult:
    stage: str
    steps: int
    start_step: int
    seconds: float
    history: list
    losses: list


@dataclass
class TrainResult:
    method: str
    stages: list
    out_dir: Path
    world_size: int
    device: str
    config: TrainConfig


def run_stage(stage: Stage, out_dir: Path, fingerprint: str, log, rank: int,
              on_step: Optional[Callable[[str, int], None]] = None) -> StageResult:
    config, checkpoint = stage.config, out_dir / checkpoint_name(stage.name)
    start, history = _try_resume(stage, checkpoint, config, fingerprint, log)
    if start:
        log(f"stage {stage.name}: resuming from step {start} ({checkpoint})")
    started, window = time.perf_counter(), []
    for step in range(start, stage.total_steps):
        stats = stage.step()
        _check_finite(stats, stage.name, step + 1, stage.world_size, checkpoint)  # 1-based in the message
        window.append(stats)
        if (step + 1) % config.log_every == 0 or step + 1 == stage.total_steps:
            row = {"step": step + 1, **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
            history.append(row)
            window = []
            log(f"[{stage.name} {step + 1}/{stage.total_steps}] " + " ".join(f"{k}: {v:.4f}" for k, v in row.items() if k != "step"))
        if rank == 0 and ((step + 1) % config.checkpoint_every == 0 or step + 1 == stage.total_steps):
            atomic.torch_save(checkpoint, _to_host({**stage.state(), "step": step + 1, "history": history,
                                                    "fingerprint": fingerprint,
                                                    "architecture": config.architecture(stage.name, stage.world_size)}))
        if on_step is not None:
            on_step(stage.name, step + 1)
    return StageResult(stage.name, stage.total_steps, start, time.perf_counter() - started, history, stage.loss_names)


def stage_arrays(config: TrainConfig, arrays: inputs.Arrays, render_arrays: Optional[inputs.Arrays]) -> dict:
    """{stage: the arrays it trains on}: the render stages on ``render_arrays`` when ``render_height`` is set."""
    if config.render_height and config.method != "cagan" and config.render_height != arrays.size[0]:
        if render_arrays is None or render_arrays.size[0] != config.render_height:
            got = "none" if render_arrays is None else f"{render_arrays.size[0]} px high"
            raise ValueError(f"render_height {config.render_height} needs the pairs read at that height, got {got}")
        if render_arrays.names != arrays.names:
            raise ValueError("render_arrays must hold the same pairs, in the same order, as arrays")
        return {stage: render_arrays if stage in RENDER_STAGES else arrays for stage in config.stages}
    return {stage: arrays for stage in config.stages}


def train(arrays: inputs.Arrays, out_dir: str | Path, config: TrainConfig = TrainConfig(), log: Callable = print,
          inject_nan: Optional[tuple[int, int]] = None, on_step: Optional[Callable[[str, int], None]] = None,
          render_arrays: Optional[inputs.Arrays] = None) -> TrainResult:
    """Train (or resume) ``config.method`` on ``arrays`` into ``out_dir``; rank 0 writes the files.
    ``on_step(stage, steps_done)`` is called after each step (and its checkpoint), e.g. to stop a test run.
    ``render_arrays``: the same pairs at ``config.render_height``, for the TOM / encoder-decoder."""
    if len(arrays) < 2:
        raise ValueError(f"a try-on model needs at least 2 training pairs, got {len(arrays)}")
    out_dir = Path(out_dir)
    per_stage = stage_arrays(config, arrays, render_arrays)
    configs = {stage: resolved(config, data.size[0]) for stage, data in per_stage.items()}
    rank, world_size = _process_group()
    device = torch.device("cuda", torch.cuda.current_device()) if world_size > 1 and torch.cuda.is_available() \
        else pick_device(config.device)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    fingerprints = {stage: data.fingerprint() for stage, data in per_stage.items()}
    if "gmm" in per_stage and per_stage["tom"] is not arrays:  # the TOM also sees the GMM's arrays
        fingerprints["tom"] = combine([fingerprints["gmm"], fingerprints["tom"]])
    frozen, results = {}, []
    for name in config.stages:
        gmm_input = (per_stage["gmm"], configs["gmm"]) if name == "tom" else None
        stage = Stage(name, per_stage[name], configs[name], device, rank, world_size, frozen, inject_nan, gmm_input)
        results.append(run_stage(stage, out_dir, fingerprints[name], log, rank, on_step))
        frozen.update(stage.models)
    if rank == 0:
        save_model(out_dir, configs, frozen, {s: d.size for s, d in per_stage.items()}, results, fingerprints)
    return TrainResult(config.method, results, out_dir, world_size, str(device), configs[config.stages[-1]])


def save_model(out_dir: Path, configs: dict, models: dict, sizes: dict, results: list, fingerprints: dict) -> None:
    """``model.pt``: the modules; ``config``, ``height`` and ``width`` are the first stage's (the GMM's for viton),
    ``stage_configs`` and ``sizes`` each stage's (they differ with ``render_height``)."""
    keep = {k: m for k, m in models.items() if k != "discriminator"}
    first = next(iter(configs))
    config, (height, width) = configs[first], sizes[first]
    fingerprint = combine([fingerprints[s] for s in configs]) if len(set(fingerprints.values())) > 1 else fingerprints[first]
    atomic.torch_save(out_dir / MODEL_NAME, {"method": config.method, "config": dataclasses.asdict(config),
                                             "height": height, "width": width, "fingerprint": fingerprint,
                                             "stage_configs": {s: dataclasses.asdict(c) for s, c in configs.items()},
                                             "sizes": {s: list(size) for s, size in sizes.items()},
                                             "state_dicts": _to_host({k: m.state_dict() for k, m in keep.items()})})
    atomic.write_json(out_dir / HISTORY_NAME, {"config": dataclasses.asdict(config), "fingerprint": fingerprint,
                                               "stages": {r.stage: {"steps": r.steps, "losses": r.losses,
                                                                    "history": r.history} for r in results}})


def load_model(path: str | Path, device="cpu") -> tuple[dict, dict]:
    """(modules in eval mode by name, the saved record) of a ``model.pt``."""
    saved = torch.load(path, map_location=device, weights_only=False)
    config = TrainConfig(**saved["config"])
    modules = {}
    for stage in config.stages:
        stage_config = TrainConfig(**saved.get("stage_configs", {}).get(stage, saved["config"]))
        height, width = saved.get("sizes", {}).get(stage, (saved["height"], saved["width"]))
        for name, module in build_models(stage_config, stage, height, width).items():
            if name in saved["state_dicts"]:
                module.load_state_dict(saved["state_dicts"][name])
                modules[name] = module.to(device).eval()
    return modules, saved


def run_metadata(result: TrainResult, seconds: float) -> dict:
    config = result.config
    metadata = {"method": result.method, "world_size": result.world_size, "device": result.device,
                "seconds": round(seconds, 1), "batch_size": config.batch_size, "lr": config.learning_rate(),
                "num_downs": config.num_downs, "ngf": config.ngf, "render_height": config.render_height,
                "hidden_weight": config.hidden_weight,
                "losses": "; ".join(f"{r.stage}: {', '.join(r.losses)}" for r in result.stages),
                "perceptual_loss": "VGG-19 from " + config.vgg_weights if config.vgg_weights else
                                   "none (no local VGG weights configured): L1 + SSIM"}
    for r in result.stages:
        final = r.history[-1] if r.history else {}
        metadata.update({f"{r.stage}_steps": r.steps, f"{r.stage}_resumed_from_step": r.start_step,
                         f"{r.stage}_seconds": round(r.seconds, 1),
                         **{f"{r.stage}_final_{k}": round(v, 5) for k, v in final.items() if k != "step"}})
    return metadata


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a try-on model (viton = CP-VTON's GMM + TOM, encoder_decoder, "
                                                 "cagan) on a VITON-HD-layout train split; resumes from OUT.")
    parser.add_argument("--root", required=True, help="dataset root (VITON-HD layout)")
    parser.add_argument("--height", type=int, required=True, help="the width is 3/4 of it")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--inject-nan", default=None, metavar="RANK:STEP",
                        help="fault injection: make RANK's loss NaN at STEP (0-based, counted in this run)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        kind = {"int": int, "float": float, "str": str, "bool": _flag}[str(field.type)]
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=getattr(defaults, field.name))
    return parser


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")


def command_args(config: TrainConfig) -> list[str]:
    args = []
    for field in dataclasses.fields(TrainConfig):
        args += [f"--{field.name.replace('_', '-')}", str(getattr(config, field.name))]
    return args


def main(argv: Optional[list[str]] = None) -> None:
    from fashion_pipeline.common.distributed import BadInput, distributed_setup, distributed_teardown, exit_not_retryable, parse_fault
    from fashion_pipeline.common.pipes import open_reporter
    from fashion_pipeline.tryon.layout import LayoutError

    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, _, _ = distributed_setup()
    try:
        with open_reporter(rank) as reporter:
            try:
                config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
                arrays = inputs.load_training(args.root, args.height, args.height * 3 // 4, config.max_train)
                render = config.render_height if config.method != "cagan" and config.render_height not in (0, args.height) else 0
                render_arrays = inputs.load_training(args.root, render, render * 3 // 4, config.max_train) if render else None
            except (LayoutError, ValueError) as error:
                raise BadInput(str(error)) from error
            log = reporter.log if rank == 0 else (lambda message: None)
            started = time.perf_counter()
            result = train(arrays, args.out, config, log=log, inject_nan=parse_fault(args.inject_nan),
                           render_arrays=render_arrays)
            if rank == 0:
                metadata = run_metadata(result, time.perf_counter() - started)
                reporter.report_metadata(metadata)
                print(json.dumps(metadata), flush=True)
    except (TrainingDiverged, ResumeRefused, BadInput) as error:
        exit_not_retryable(error)
    finally:
        distributed_teardown()


if __name__ == "__main__":
    main()
