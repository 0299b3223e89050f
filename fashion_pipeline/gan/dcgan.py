"""The thesis's DCGAN (Figures 4.9 and 4.10) and a fast training loop with per-epoch checkpoints.

The models are those of pytorch/examples ``dcgan/main.py`` with nz=100, ngf=ndf=64 and 64x64 RGB.
One deliberate change: the discriminator returns **logits** (its final Sigmoid is folded into the
loss, ``BCEWithLogitsLoss``). ``BCE(sigmoid(l), y) == BCEWithLogits(l, y)`` mathematically; the fused
form is numerically stable and is the only BCE autocast allows. ``D(x)`` and ``D(G(z))`` are still
reported as probabilities (``sigmoid`` of the logits).

Why the loop is fast, compared with the reference:
- the whole training set sits on the device as uint8 (12 KiB an image) and is normalised per batch
  there, so there is no DataLoader, no decoding and no host-to-device copy per step;
- the per-step statistics are accumulated in a device tensor and read once per epoch (``.item()``
  each step would synchronise the GPU every step);
- on CUDA: bfloat16 autocast, fused Adam, channels_last; ``torch.compile`` is an option;
- the per-epoch checkpoint is copied to the host and written by a background thread while the next
  epoch trains (atomically: an interruption leaves the previous checkpoint intact).

Per epoch it records ``Loss_D`` (real + fake), ``Loss_G``, ``D(x)``, ``D(G(z))`` before the D step
(``D_G_z1``) and after it (``D_G_z2``), averaged over the epoch's batches, as the thesis does.

``python -m fashion_pipeline.gan.dcgan --data cropped.npy --out runs/cropped --epochs 5``
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashion_pipeline.common import atomic
from fashion_pipeline.common.device import pick_device

from fashion_pipeline.gan.settings import (  # noqa: E402,F401  (torch-free, for the Dagster layer)
    CHECKPOINT_NAME, GENERATOR_NAME, HISTORY_NAME, STAT_NAMES, TrainConfig,
)


# ---------------------------------------------------------------- models (thesis Figures 4.9, 4.10)

class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            # z: nz x 1 x 1
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # ngf x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # nc x 64 x 64
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """Figure 4.10 without the final Sigmoid: returns one logit per image (see module docstring)."""

    def __init__(self, ndf: int = 64, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            # nc x 64 x 64; no BatchNorm on the input layer
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # ndf x 32 x 32
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*4) x 8 x 8
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*8) x 4 x 4
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.main(image).flatten()


def weights_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(config: TrainConfig, device: torch.device) -> tuple[Generator, Discriminator]:
    torch.manual_seed(config.seed)
    generator = Generator(config.nz, config.ngf).to(device)
    discriminator = Discriminator(config.ndf).to(device)
    generator.apply(weights_init)
    discriminator.apply(weights_init)
    # channels_last pays off on CUDA's tensor cores; measured slower than NCHW on the CPU (bench/dcgan_throughput.py).
    if config.channels_last and device.type == "cuda":
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    return generator, discriminator


# ---------------------------------------------------------------- data

def uint8_to_unit_range(batch_nhwc: torch.Tensor) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [-1, 1] (the reference's Normalize(0.5, 0.5)).

    The permute of an NHWC tensor *is* the channels_last layout, so no copy is made for it.
    """
    return batch_nhwc.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def unit_range_to_uint8(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W in [-1, 1] -> N x H x W x 3 uint8 on the host."""
    scaled = ((images.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def dataset_fingerprint(images: np.ndarray) -> str:
    """Identifies a training set, so a checkpoint is never resumed on different data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def validate_images(images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
        raise ValueError(f"expected an N x 64 x 64 x 3 uint8 array, got {images.shape} {images.dtype}")
    if len(images) < 2:
        raise ValueError(f"a DCGAN needs at least 2 training images, got {len(images)}")


# ---------------------------------------------------------------- training

@dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int  # 1-based
    start_epoch: int  # epochs already done when this run began: 0 fresh, > 0 resumed
    epochs_run: int
    seconds: float
    images_per_second: float
    out_dir: Path


class _Trainer:
    """Holds the models, optimisers and on-device data; one ``run_epoch`` call per epoch."""

    def __init__(self, images: np.ndarray, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.use_amp = config.amp and device.type == "cuda"
        self.channels_last = config.channels_last and device.type == "cuda"
        self.generator, self.discriminator = build_models(config, device)
        adam = dict(lr=config.lr, betas=(config.beta1, 0.999))
        if device.type == "cuda":
            adam["fused"] = True
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **adam)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **adam)
        self.data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        # The epoch order comes from its own generator so that resuming reproduces it.
        self.order_rng = torch.Generator(device="cpu").manual_seed(config.seed)
        self.fixed_noise = torch.randn(64, config.nz, 1, 1,
                                       generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
        if config.compile:
            # Compiling the modules (not the steps) keeps backward() and optimiser steps outside the graphs.
            self.generator = torch.compile(self.generator)
            self.discriminator = torch.compile(self.discriminator)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    def _d_step(self, real: torch.Tensor, noise: torch.Tensor):
        """Maximise log D(x) + log(1 - D(G(z))); returns the fake batch for the G step."""
        with self._autocast():
            logits_real = self.discriminator(real)
            err_real = F.binary_cross_entropy_with_logits(logits_real.float(), torch.ones_like(logits_real, dtype=torch.float32))
            fake = self.generator(noise)
            logits_fake = self.discriminator(fake.detach())
            err_fake = F.binary_cross_entropy_with_logits(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32))
        (err_real + err_fake).backward()
        return fake, err_real + err_fake, torch.sigmoid(logits_real.float()).mean(), torch.sigmoid(logits_fake.float()).mean()

    def _g_step(self, fake: torch.Tensor):
        """Maximise log D(G(z)) (the non-saturating loss), through the just-updated D."""
        with self._autocast():
            logits = self.discriminator(fake)
            err_g = F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float32))
        err_g.backward()
        return err_g, torch.sigmoid(logits.float()).mean()

    def n_batches(self) -> int:
        return math.ceil(len(self.data) / self.config.batch_size)

    def run_epoch(self) -> tuple[dict, np.ndarray]:
        """One pass over the data; returns the epoch means and the per-step (Loss_D, Loss_G)."""
        size = self.config.batch_size
        order = torch.randperm(len(self.data), generator=self.order_rng).to(self.device)
        steps = torch.zeros(self.n_batches(), len(STAT_NAMES), device=self.device)
        self.generator.train()
        self.discriminator.train()
        for step in range(self.n_batches()):
            real = uint8_to_unit_range(self.data[order[step * size:(step + 1) * size]])
            if not self.channels_last:
                real = real.contiguous()  # NCHW, the layout the models were built in
            noise = torch.randn(real.shape[0], self.config.nz, 1, 1, device=self.device)
            self.opt_d.zero_grad(set_to_none=True)
            fake, err_d, d_x, d_g_z1 = self._d_step(real, noise)
            self.opt_d.step()
            self.opt_g.zero_grad(set_to_none=True)
            err_g, d_g_z2 = self._g_step(fake)
            self.opt_g.step()
            # Device-side write: no host synchronisation inside the loop.
            steps[step] = torch.stack([err_d, err_g, d_x, d_g_z1, d_g_z2]).detach().float()
        per_step = steps.cpu().numpy()  # the one synchronisation of the epoch
        means = {name: float(value) for name, value in zip(STAT_NAMES, per_step.mean(axis=0))}
        return means, per_step[:, :2]

    def generate(self, noise: torch.Tensor) -> np.ndarray:
        with self._autocast():
            return unit_range_to_uint8(generate_with_batch_stats(_unwrap(self.generator), noise))

    def state(self) -> dict:
        return {
            "generator": _unwrap(self.generator).state_dict(),
            "discriminator": _unwrap(self.discriminator).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "order_rng": self.order_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            "fixed_noise": self.fixed_noise.cpu(),
        }

    def load_state(self, state: dict) -> None:
        _unwrap(self.generator).load_state_dict(state["generator"])
        _unwrap(self.discriminator).load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.order_rng.set_state(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.fixed_noise = state["fixed_noise"].to(self.device)


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "_orig_mod", module)


def best_epoch_index(history: list[dict]) -> int:
    """The epoch closest to the adversarial equilibrium, where D can no longer tell real from fake.

    At the game's optimum D(x) = D(G(z)) = 0.5 (thesis section 5.2). "Best" is the epoch minimising
    ``|D(x) - 0.5| + |D(G(z))_after - 0.5|``, ties broken by the lower ``Loss_G``. The first 10% of the
    epochs are skipped (when there is more than one), because right after initialisation both
    outputs sit near 0.5 only because neither network has learned anything yet.
    """
    if not history:
        raise ValueError("no epochs in the history")
    warmup = len(history) // 10 if len(history) > 1 else 0
    candidates = history[warmup:]

    def gap(row: dict) -> tuple[float, float]:
        return abs(row["D_x"] - 0.5) + abs(row["D_G_z2"] - 0.5), row["Loss_G"]

    return history.index(min(candidates, key=gap))


def _try_resume(trainer: _Trainer, checkpoint: Path, config: TrainConfig, fingerprint: str) -> tuple[int, list, list]:
    """Load ``checkpoint`` when it belongs to this data and architecture; return (next epoch, history, steps)."""
    if not checkpoint.exists():
        return 0, [], []
    state = torch.load(checkpoint, map_location=trainer.device, weights_only=False)
    if state.get("fingerprint") != fingerprint or state.get("architecture") != config.architecture():
        return 0, [], []
    trainer.load_state(state)
    return state["epoch"] + 1, state["history"], state.get("step_losses", [])


def train(images: np.ndarray, out_dir: str | Path, config: TrainConfig = TrainConfig(),
          on_epoch_end: Optional[Callable[[int, dict], None]] = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) a DCGAN on ``images`` (N x 64 x 64 x 3 uint8), checkpointing each epoch to ``out_dir``.

    A ``checkpoint_last.pt`` in ``out_dir`` made from the same data and architecture is resumed; raising
    ``config.epochs`` above what it holds continues training. Other checkpoints are ignored (fresh start).
    """
    validate_images(images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    fingerprint = dataset_fingerprint(images)
    trainer = _Trainer(images, config, device)
    start_epoch, history, step_losses = _try_resume(trainer, out_dir / CHECKPOINT_NAME, config, fingerprint)
    if start_epoch:
        log(f"resuming from epoch {start_epoch} ({out_dir / CHECKPOINT_NAME})")
    started = time.perf_counter()
    # The checkpoint is written by a background thread while the next epoch trains; the one
    # before must be finished first, and the last one before we return (or raise).
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        try:
            for epoch in range(start_epoch, config.epochs):
                stats, per_step = trainer.run_epoch()
                history.append({"epoch": epoch + 1, **stats})  # 1-based, as the reference prints
                step_losses.extend(per_step.tolist())
                if pending is not None:
                    pending.result()
                pending = writer.submit(atomic.torch_save, out_dir / CHECKPOINT_NAME,
                                        _checkpoint(trainer, config, fingerprint, epoch, history, step_losses))
                log(f"[{epoch + 1}/{config.epochs}] " + " ".join(f"{k}: {stats[k]:.4f}" for k in STAT_NAMES))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, stats)
        finally:
            if pending is not None:
                pending.result()
    seconds = time.perf_counter() - started
    epochs_run = config.epochs - start_epoch if config.epochs > start_epoch else 0
    _save_outputs(trainer, out_dir, config, history, step_losses)
    return TrainResult(history=history, best_epoch=history[best_epoch_index(history)]["epoch"],
                       start_epoch=start_epoch, epochs_run=epochs_run, seconds=seconds,
                       images_per_second=epochs_run * len(images) / seconds if seconds > 0 else 0.0,
                       out_dir=out_dir)


def _checkpoint(trainer, config, fingerprint, epoch, history, step_losses) -> dict:
    """A snapshot on the host: copies, because the next epoch keeps updating the live tensors."""
    state = _to_host(trainer.state())
    state.update(epoch=epoch, history=list(history), step_losses=list(step_losses), fingerprint=fingerprint,
                 architecture=config.architecture(), config=dataclasses.asdict(config))
    return state


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {key: _to_host(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(value) for value in obj)
    return obj


def _save_outputs(trainer: _Trainer, out_dir: Path, config: TrainConfig, history: list, step_losses: list) -> None:
    generator_state = _unwrap(trainer.generator).state_dict()
    atomic.torch_save(out_dir / GENERATOR_NAME, {"state_dict": generator_state, "nz": config.nz, "ngf": config.ngf})
    atomic.write_json(out_dir / HISTORY_NAME, {"config": dataclasses.asdict(config), "epochs": history,
                                               "best_epoch": history[best_epoch_index(history)]["epoch"] if history else None,
                                               "step_losses": step_losses})
    atomic.save_npy(out_dir / "fixed_noise_fakes.npy", trainer.generate(trainer.fixed_noise))


@torch.no_grad()
def generate_with_batch_stats(generator: Generator, noise: torch.Tensor) -> torch.Tensor:
    """``generator(noise)`` with BatchNorm normalising by the batch's statistics, as the reference does
    (it calls ``netG(fixed_noise)`` in train mode). Early in training the running averages lag far
    behind and eval mode gives flat grey images. The running averages are restored afterwards, so
    generating leaves the model unchanged.
    """
    saved = {key: value.clone() for key, value in generator.state_dict().items()
             if "running_" in key or "num_batches_tracked" in key}
    was_training = generator.training
    generator.train()
    try:
        return generator(noise)
    finally:
        generator.load_state_dict(saved, strict=False)
        generator.train(was_training)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> Generator:
    """The generator saved by ``train`` (``generator.pt``)."""
    saved = torch.load(path, map_location=device, weights_only=False)
    generator = Generator(saved["nz"], saved["ngf"]).to(device)
    generator.load_state_dict(saved["state_dict"])
    return generator.eval()


@torch.no_grad()
def sample(generator: Generator, count: int, seed: int = 0, batch_size: int = 256,
           device: torch.device | str = "cpu") -> np.ndarray:
    """``count`` fakes as N x 64 x 64 x 3 uint8, from seeded noise (batch statistics, as in training)."""
    rng = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, count, batch_size):
        noise = torch.randn(min(batch_size, count - start), generator.nz, 1, 1, generator=rng).to(device)
        chunks.append(unit_range_to_uint8(generate_with_batch_stats(generator, noise)))
    return np.concatenate(chunks) if chunks else np.zeros((0, 64, 64, 3), np.uint8)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Train the thesis's DCGAN on a 64x64 uint8 .npy training set; "
                                                 "resumes from OUT/checkpoint_last.pt.")
    parser.add_argument("--data", required=True, help="N x 64 x 64 x 3 uint8 .npy (a dcgan_training_set file)")
    parser.add_argument("--out", required=True, help="output folder (checkpoint, history.json, generator.pt)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, field.name))
        else:
            kind = {"int": int, "float": float, "str": str}[str(field.type)]
            parser.add_argument(flag, type=kind, default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    images = np.load(args.data, allow_pickle=False)
    result = train(images, args.out, config)
    best = result.history[best_epoch_index(result.history)]
    print(json.dumps({"best_epoch": result.best_epoch, "best": best, "images_per_second": result.images_per_second}))


if __name__ == "__main__":
    main()
