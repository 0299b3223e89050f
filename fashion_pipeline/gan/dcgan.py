"""The thesis's DCGAN (Figures 4.9 and 4.10) and a fast training loop with resumable checkpoints.

The models are those of pytorch/examples ``dcgan/main.py`` with nz=100, ngf=ndf=64 and 64x64 RGB
(``image_size=128`` adds one up-sampling layer to G and one down-sampling layer to D).
One deliberate change: the discriminator returns **logits** (its final Sigmoid is folded into the
loss, ``BCEWithLogitsLoss``). ``BCE(sigmoid(l), y) == BCEWithLogits(l, y)`` mathematically; the fused
form is numerically stable and is the only BCE autocast allows. ``D(x)`` and ``D(G(z))`` are still
reported as probabilities (``sigmoid`` of the logits).

Why the loop is fast, compared with the reference:
- the whole training set sits on the device as uint8 and is normalised per batch there, so there is
  no DataLoader, no decoding and no host-to-device copy per step;
- the per-step statistics are accumulated in a device tensor and read once per epoch (``.item()``
  each step would synchronise the GPU every step);
- the G step back-propagates into G's weights only (``backward(inputs=...)``): the reference also
  computes D's weight gradients there and throws them away at the next ``zero_grad``;
- on CUDA: bfloat16 autocast, fused Adam, channels_last, ``cudnn.benchmark``, and (one process) every
  full-batch step is one replayed CUDA graph: the whole D and G step, optimisers included, costs one
  launch instead of a few hundred. The partial last batch runs eagerly (``drop_last`` skips it);
- checkpoints: a device-side snapshot every ``checkpoint_every`` epochs, copied to the host and
  written by a background thread while the next epochs train (atomically: an interruption leaves the
  previous checkpoint intact).

Per epoch it records ``Loss_D`` (real + fake), ``Loss_G``, ``D(x)``, ``D(G(z))`` before the D step
(``D_G_z1``) and after it (``D_G_z2``), averaged over the epoch's batches; and, for Table 5.2 like
for like, ``tutorial_last_logged``: the same five values of the last batch the PyTorch tutorial's loop
prints (``i % 50 == 0``), a single batch, not a mean.

More processes (``torchrun --nproc_per_node N``): every rank draws the same global batch order and
the same global noise and trains its slice of each global batch (``batch_size`` per rank); the
gradients are averaged with one all-reduce per optimiser step, weighted by each slice's size, so
apart from BatchNorm's per-rank batch statistics a 2 x 8 run computes what a 1 x 16 run does. DDP's
module wrapper is not used: D runs three forwards per iteration, which its reducer does not expect.
The losses are averaged over the ranks before the finiteness check, so all ranks stop together with
one message (``TrainingDiverged``, exit code 2). The world size is part of the resume signature: a
checkpoint is continued only by as many processes as wrote it (``ResumeRefused``, exit code 2).
``--scale-lr`` applies the linear learning-rate rule (see ``TrainConfig``).

Under Dagster Pipes (the ``dcgan`` asset launches this CLI) the logs and the final numbers go back
to Dagster; ``--inject-nan RANK:STEP`` poisons one rank's loss at one step, to test the stop.

``python -m fashion_pipeline.gan.dcgan --data cropped.npy --out runs/cropped --epochs 5``
``torchrun --nproc_per_node 2 -m fashion_pipeline.gan.dcgan --data cropped.npy --out runs/ddp --batch-size 64``
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
from fashion_pipeline.gan.augment import diff_augment, parse_policy, random_flip
from fashion_pipeline.common.device import pick_device

from fashion_pipeline.gan.settings import (  # noqa: F401  (torch-free, for the Dagster layer)
    CHECKPOINT_NAME, GENERATOR_NAME, HISTORY_NAME, IMAGE_SIZES, STAT_NAMES, TUTORIAL_LOG_EVERY, TrainConfig,
)

RNG_KEYS = ("order_rng", "torch_rng", "cuda_rng")
# Eager steps before a CUDA graph is captured: they initialise the optimiser state, cuDNN's choices
# and any compilation. They are real training steps, not thrown away.
GRAPH_WARMUP_STEPS = 3


class TrainingDiverged(RuntimeError):
    """A loss (averaged over the ranks) is not finite."""


class ResumeRefused(RuntimeError):
    """The checkpoint was written by another number of processes."""


# ---------------------------------------------------------------- models (thesis Figures 4.9, 4.10)

def _widths(image_size: int) -> list[int]:
    """Feature-map multipliers from 4x4 up: [8, 4, 2, 1] at 64 px (the figures), [16, 8, 4, 2, 1] at 128."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    return [2 ** k for k in reversed(range(int(math.log2(image_size)) - 2))]


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        self.nz, self.image_size = nz, image_size
        widths = _widths(image_size)
        # z: nz x 1 x 1 -> (ngf*widths[0]) x 4 x 4; each further layer doubles the size and halves the maps
        layers = [nn.ConvTranspose2d(nz, ngf * widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * widths[0]), nn.ReLU(True)]
        for wider, narrower in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(ngf * wider, ngf * narrower, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * narrower), nn.ReLU(True)]
        # ngf x (size/2) x (size/2) -> nc x size x size
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """Figure 4.10 without the final Sigmoid: returns one logit per image (see module docstring)."""

    def __init__(self, ndf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        widths = list(reversed(_widths(image_size)))
        # nc x size x size -> ndf x size/2; no BatchNorm on the input layer
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for narrower, wider in zip(widths, widths[1:]):
            layers += [nn.Conv2d(ndf * narrower, ndf * wider, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * wider), nn.LeakyReLU(0.2, inplace=True)]
        # (ndf*widths[-1]) x 4 x 4 -> one logit
        layers += [nn.Conv2d(ndf * widths[-1], 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

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
    generator = Generator(config.nz, config.ngf, image_size=config.image_size).to(device)
    discriminator = Discriminator(config.ndf, image_size=config.image_size).to(device)
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


def validate_images(images: np.ndarray, image_size: int = 64) -> None:
    expected = (image_size, image_size, 3)
    if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
        raise ValueError(f"expected an N x {image_size} x {image_size} x 3 uint8 array (image_size {image_size}), "
                         f"got {images.shape} {images.dtype}")
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
    world_size: int = 1
    device: str = "cpu"


def _process_group() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _Trainer:
    """Holds the models, optimisers and on-device data; one ``run_epoch`` call per epoch."""

    def __init__(self, images: np.ndarray, config: TrainConfig, device: torch.device, rank: int = 0,
                 world_size: int = 1, inject_nan: Optional[tuple[int, int]] = None):
        self.config, self.device = config, device
        self.rank, self.world_size = rank, world_size
        self.inject_nan = inject_nan
        self.use_amp = config.amp and device.type == "cuda"
        self.channels_last = config.channels_last and device.type == "cuda"
        self.augment_policy = parse_policy(config.diff_augment)
        # Graphs replay fixed addresses: one process (no all-reduce inside), no fault injection, and no
        # augmentation (its index tensors are built per call; never checked under capture).
        self.use_graphs = (config.cuda_graphs and device.type == "cuda" and world_size == 1 and inject_nan is None
                           and not self.augment_policy)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        self.generator, self.discriminator = build_models(config, device)
        adam = dict(lr=config.effective_lr(world_size), betas=(config.beta1, 0.999))
        if device.type == "cuda":
            adam.update(fused=True, capturable=self.use_graphs)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **adam)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **adam)
        self.d_params = list(self.discriminator.parameters())
        self.g_params = list(self.generator.parameters())
        self.data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        # The epoch order comes from its own generator so that resuming reproduces it; every rank draws the same.
        self.order_rng = torch.Generator(device="cpu").manual_seed(config.seed)
        self.fixed_noise = torch.randn(64, config.nz, 1, 1,
                                       generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
        self.graph, self.graph_stats, self.graph_index = None, None, None
        self.warmup_left = GRAPH_WARMUP_STEPS
        self.steps_done = 0  # in this run, for --inject-nan
        if config.compile:
            # Compiling the modules (not the steps) keeps backward() and optimiser steps outside the graphs.
            self.generator = torch.compile(self.generator, dynamic=False)
            self.discriminator = torch.compile(self.discriminator, dynamic=False)

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.world_size

    def _autocast(self):
        # Autocast's weight-cast cache must be off while a CUDA graph is captured.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp,
                              cache_enabled=not self.use_graphs)

    def _d_step(self, real: torch.Tensor, noise: torch.Tensor):
        """Maximise log D(x) + log(1 - D(G(z))); returns the fake batch for the G step."""
        with self._autocast():
            logits_real = self.discriminator(self._augment(real))
            err_real = F.binary_cross_entropy_with_logits(logits_real.float(), torch.ones_like(logits_real, dtype=torch.float32))
            fake = self.generator(noise)
            logits_fake = self.discriminator(self._augment(fake.detach()))
            err_fake = F.binary_cross_entropy_with_logits(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32))
        err_d = err_real + err_fake
        if self.inject_nan == (self.rank, self.steps_done):
            err_d = err_d * float("nan")  # --inject-nan: what a numerical blow-up on this rank looks like
        err_d.backward(inputs=self.d_params)
        return fake, err_d, torch.sigmoid(logits_real.float()).mean(), torch.sigmoid(logits_fake.float()).mean()

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: the images, or (``diff_augment``) the same random augmentation policy for reals and fakes."""
        return diff_augment(images, self.augment_policy) if self.augment_policy else images

    def _g_step(self, fake: torch.Tensor):
        """Maximise log D(G(z)) (the non-saturating loss), through the just-updated D, into G's weights only."""
        with self._autocast():
            logits = self.discriminator(self._augment(fake))
            err_g = F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float32))
        err_g.backward(inputs=self.g_params)
        return err_g, torch.sigmoid(logits.float()).mean()

    def _average_gradients(self, params: list, weight: float) -> None:
        """Sum over the ranks of ``weight`` x each rank's gradient, ``weight`` = its share of the global batch."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(weight)
        torch.distributed.all_reduce(flat)
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def _train_step(self, real: torch.Tensor, noise: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        # Once a graph is captured the gradients must stay the tensors it writes: zero them, never drop them.
        keep_grads = self.graph is not None
        self.opt_d.zero_grad(set_to_none=not keep_grads)
        fake, err_d, d_x, d_g_z1 = self._d_step(real, noise)
        self._average_gradients(self.d_params, weight)
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=not keep_grads)
        err_g, d_g_z2 = self._g_step(fake)
        self._average_gradients(self.g_params, weight)
        self.opt_g.step()
        return torch.stack([err_d, err_g, d_x, d_g_z1, d_g_z2]).detach().float()

    def _real(self, index: torch.Tensor) -> torch.Tensor:
        real = uint8_to_unit_range(self.data[index])
        if self.config.flip:
            real = random_flip(real)
        return real if self.channels_last else real.contiguous()  # NCHW, the layout the models were built in

    def batch_bounds(self) -> list[tuple[int, int]]:
        """[start, end) of each global batch in the epoch's order."""
        n, size = len(self.data), self.global_batch
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        last = bounds[-1][1] - bounds[-1][0]
        # A final batch too small to give every rank an image is dropped (BatchNorm needs one).
        if len(bounds) > 1 and ((self.config.drop_last and last < size) or last < self.world_size):
            bounds.pop()
        return bounds

    def _eager_step(self, order: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """One step on this rank's slice of the global batch order[start:end]; stats weighted by the slice's share."""
        count = end - start
        lo, hi = count * self.rank // self.world_size, count * (self.rank + 1) // self.world_size
        # Every rank draws the global batch's noise and keeps its rows: the same numbers as one process.
        noise = torch.randn(count, self.config.nz, 1, 1, device=self.device)[lo:hi]
        weight = (hi - lo) / count
        return self._train_step(self._real(order[start + lo:start + hi]), noise, weight) * weight

    def _graph_step(self, index: torch.Tensor) -> torch.Tensor:
        if self.graph is None and self.warmup_left > 0:
            self.warmup_left -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                stats = self._train_step(self._real(index), torch.randn(len(index), self.config.nz, 1, 1, device=self.device))
            torch.cuda.current_stream().wait_stream(side)
            return stats
        if self.graph is None:
            self._capture(index)
        self.graph_index.copy_(index)
        self.graph.replay()
        return self.graph_stats

    def _capture(self, index: torch.Tensor) -> None:
        """Record one full-batch step (data gather, noise, D and G steps, both Adam updates) as a CUDA graph."""
        self.opt_d.zero_grad(set_to_none=True)  # backward() then allocates the gradients in the graph's pool
        self.opt_g.zero_grad(set_to_none=True)
        self.graph_index = index.clone()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            noise = torch.randn(len(index), self.config.nz, 1, 1, device=self.device)
            self.graph_stats = self._train_step(self._real(self.graph_index), noise)
        self.graph = graph

    def run_epoch(self) -> np.ndarray:
        """One pass over the data; returns the per-step statistics (rows: batches, columns: STAT_NAMES),
        averaged over the ranks."""
        order = torch.randperm(len(self.data), generator=self.order_rng).to(self.device)
        bounds = self.batch_bounds()
        steps = torch.zeros(len(bounds), len(STAT_NAMES), device=self.device)
        self.generator.train()
        self.discriminator.train()
        for step, (start, end) in enumerate(bounds):
            if self.use_graphs and end - start == self.global_batch:
                steps[step] = self._graph_step(order[start:end])
            else:
                steps[step] = self._eager_step(order, start, end)
            self.steps_done += 1
        if self.world_size > 1:
            torch.distributed.all_reduce(steps)  # each rank's rows are weighted by its share: the sum is the mean
        return steps.cpu().numpy()  # the one synchronisation of the epoch

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
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "fixed_noise": self.fixed_noise,
        }

    def load_state(self, state: dict) -> None:
        """Restore a checkpoint read by ``read_checkpoint`` (the RNG states are CPU byte tensors there)."""
        _unwrap(self.generator).load_state_dict(state["generator"])
        _unwrap(self.discriminator).load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.order_rng.set_state(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.fixed_noise = state["fixed_noise"].to(self.device)


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "_orig_mod", module)


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """``torch.load`` with the tensors mapped to ``map_location`` except the RNG states.

    ``torch.set_rng_state``, ``torch.cuda.set_rng_state`` and ``Generator.set_state`` accept only CPU
    byte tensors; mapping them to the GPU (as ``map_location=<cuda device>`` does) makes resuming fail.
    """
    state = torch.load(path, map_location=map_location, weights_only=False)
    for key in RNG_KEYS:
        if state.get(key) is not None:
            state[key] = state[key].detach().to("cpu", torch.uint8)
    return state


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


def epoch_record(epoch: int, per_step: np.ndarray) -> dict:
    """The history row of one epoch: the means over its batches, and the tutorial's last printed batch."""
    logged = (len(per_step) - 1) // TUTORIAL_LOG_EVERY * TUTORIAL_LOG_EVERY
    return {"epoch": epoch + 1,  # 1-based, as the reference prints
            **{name: float(value) for name, value in zip(STAT_NAMES, per_step.mean(axis=0))},
            "tutorial_last_logged": {"batch": int(logged),
                                     **{name: float(value) for name, value in zip(STAT_NAMES, per_step[logged])}}}


def check_finite(per_step: np.ndarray, epoch: int, world_size: int, checkpoint: Path) -> None:
    bad = np.flatnonzero(~np.isfinite(per_step).all(axis=1))
    if len(bad):
        row = dict(zip(STAT_NAMES, per_step[bad[0]].tolist()))
        averaged = f" (averaged over {world_size} processes)" if world_size > 1 else ""
        raise TrainingDiverged(f"non-finite loss at epoch {epoch + 1}, batch {bad[0]}{averaged}: {row}; "
                               f"the last good state is {checkpoint} (if written)")


def _try_resume(trainer: _Trainer, checkpoint: Path, config: TrainConfig, fingerprint: str,
                log: Callable[[str], None] = print) -> tuple[int, list, list]:
    """Load ``checkpoint`` when it belongs to this data and architecture; return (next epoch, history, steps)."""
    if not checkpoint.exists():
        return 0, [], []
    state = read_checkpoint(checkpoint, map_location=trainer.device)
    saved, world_size = state.get("architecture") or {}, trainer.world_size
    if state.get("fingerprint") != fingerprint:
        log(f"{checkpoint} was trained on other data; starting again from epoch 1")
        return 0, [], []
    saved_world_size = saved.get("world_size", 1)
    if saved_world_size != world_size and saved == config.architecture(saved_world_size):
        raise ResumeRefused(
            f"{checkpoint} (epoch {state['epoch'] + 1}) was trained by {saved_world_size} process(es); this run has "
            f"{world_size}. The batch is per process, so another count changes the global batch and what each step "
            f"sees. Resume with nproc_per_node={saved_world_size}, or start again (asset config resume: false, or "
            f"delete the checkpoint).")
    if saved != config.architecture(world_size):
        log(f"{checkpoint} was trained with other settings; starting again from epoch 1")
        return 0, [], []
    trainer.load_state(state)
    return state["epoch"] + 1, state["history"], state.get("step_losses", [])


def train(images: np.ndarray, out_dir: str | Path, config: TrainConfig = TrainConfig(),
          on_epoch_end: Optional[Callable[[int, dict], None]] = None, log: Callable[[str], None] = print,
          inject_nan: Optional[tuple[int, int]] = None) -> TrainResult:
    """Train (or resume) a DCGAN on ``images`` (N x S x S x 3 uint8, S = ``config.image_size``) into ``out_dir``.

    A ``checkpoint_last.pt`` in ``out_dir`` made from the same data, architecture and process count is
    resumed; raising ``config.epochs`` above what it holds continues training. Other checkpoints are
    ignored (fresh start), except one from another process count (``ResumeRefused``). Under torchrun
    (an initialised process group) every rank calls this; rank 0 writes the files.
    ``inject_nan=(rank, step)`` poisons that rank's loss at that step of this run (fault injection).
    """
    validate_images(images, config.image_size)
    out_dir = Path(out_dir)
    rank, world_size = _process_group()
    device = torch.device("cuda", torch.cuda.current_device()) if world_size > 1 and torch.cuda.is_available() \
        else pick_device(config.device)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = dataset_fingerprint(images)
    trainer = _Trainer(images, config, device, rank, world_size, inject_nan)
    config = dataclasses.replace(config, epochs=config.epochs_for(len(trainer.batch_bounds())))
    checkpoint = out_dir / CHECKPOINT_NAME
    start_epoch, history, step_losses = _try_resume(trainer, checkpoint, config, fingerprint, log)
    if start_epoch:
        log(f"resuming from epoch {start_epoch} ({checkpoint})")
    if world_size > 1:
        log(f"{world_size} processes, global batch {trainer.global_batch}, lr {config.effective_lr(world_size):g}")
    started = time.perf_counter()
    # Checkpoints are written by a background thread while the next epochs train; one write at a
    # time, and the last one finishes before we return (or raise).
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        try:
            for epoch in range(start_epoch, config.epochs):
                per_step = trainer.run_epoch()
                check_finite(per_step, epoch, world_size, checkpoint)
                history.append(epoch_record(epoch, per_step))
                step_losses.extend(per_step[:, :2].tolist())
                if rank == 0 and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs):
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(_write_checkpoint, checkpoint,
                                            _checkpoint(trainer, config, fingerprint, epoch, history, step_losses))
                log(f"[{epoch + 1}/{config.epochs}] " + " ".join(f"{k}: {history[-1][k]:.4f}" for k in STAT_NAMES))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, {k: history[-1][k] for k in STAT_NAMES})
        finally:
            if pending is not None:
                pending.result()
    seconds = time.perf_counter() - started
    epochs_run = max(config.epochs - start_epoch, 0)
    if rank == 0:
        _save_outputs(trainer, out_dir, config, history, step_losses)
    return TrainResult(history=history, best_epoch=history[best_epoch_index(history)]["epoch"],
                       start_epoch=start_epoch, epochs_run=epochs_run, seconds=seconds,
                       images_per_second=epochs_run * len(images) / seconds if seconds > 0 else 0.0,
                       out_dir=out_dir, world_size=world_size, device=str(device))


def _checkpoint(trainer, config, fingerprint, epoch, history, step_losses) -> dict:
    """A snapshot on the device (cheap, and ordered on the stream before the next epoch's updates);
    ``_write_checkpoint`` copies it to the host in the writer thread."""
    state = _clone(trainer.state())
    state.update(epoch=epoch, history=list(history), step_losses=list(step_losses), fingerprint=fingerprint,
                 architecture=config.architecture(trainer.world_size), config=dataclasses.asdict(config))
    return state


def _write_checkpoint(path: Path, snapshot: dict) -> Path:
    return atomic.torch_save(path, _to_host(snapshot))


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {key: _clone(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(value) for value in obj)
    return obj


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {key: _to_host(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(value) for value in obj)
    return obj


def _save_outputs(trainer: _Trainer, out_dir: Path, config: TrainConfig, history: list, step_losses: list) -> None:
    generator_state = _unwrap(trainer.generator).state_dict()
    atomic.torch_save(out_dir / GENERATOR_NAME, {"state_dict": generator_state, "nz": config.nz, "ngf": config.ngf,
                                                 "image_size": config.image_size})
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
    generator = Generator(saved["nz"], saved["ngf"], image_size=saved.get("image_size", 64)).to(device)
    generator.load_state_dict(saved["state_dict"])
    return generator.eval()


@torch.no_grad()
def sample(generator: Generator, count: int, seed: int = 0, batch_size: int = 256,
           device: torch.device | str = "cpu") -> np.ndarray:
    """``count`` fakes as N x S x S x 3 uint8, from seeded noise (batch statistics, as in training)."""
    rng = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, count, batch_size):
        noise = torch.randn(min(batch_size, count - start), generator.nz, 1, 1, generator=rng).to(device)
        chunks.append(unit_range_to_uint8(generate_with_batch_stats(generator, noise)))
    size = getattr(generator, "image_size", 64)
    return np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)


# ---------------------------------------------------------------- CLI (standalone, torchrun, Dagster Pipes)

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the thesis's DCGAN on an N x S x S x 3 uint8 .npy training set; "
                                                 "resumes from OUT/checkpoint_last.pt. Runs under torchrun and Dagster Pipes.")
    parser.add_argument("--data", required=True, help="N x S x S x 3 uint8 .npy (a dcgan_training_set file)")
    parser.add_argument("--out", required=True, help="output folder (checkpoint, history.json, generator.pt)")
    parser.add_argument("--inject-nan", default=None, metavar="RANK:STEP",
                        help="fault injection: make RANK's loss NaN at STEP (0-based, counted in this run)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, field.name))
        else:
            kind = {"int": int, "float": float, "str": str}[str(field.type)]
            parser.add_argument(flag, type=kind, default=getattr(defaults, field.name))
    return parser


def command_args(config: TrainConfig) -> list[str]:
    """The CLI flags that reproduce ``config`` (the ``dcgan`` asset launches the CLI with them)."""
    args = []
    for field in dataclasses.fields(TrainConfig):
        flag, value = field.name.replace("_", "-"), getattr(config, field.name)
        args += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return args


def run_metadata(result: TrainResult) -> dict:
    """The numbers the ``dcgan`` asset reports (through Pipes when it launched us)."""
    best, final = result.history[best_epoch_index(result.history)], result.history[-1]
    return {
        **{name: round(float(best[name]), 5) for name in STAT_NAMES},
        **{f"final_{name}": round(float(final[name]), 5) for name in STAT_NAMES},
        "best_epoch": int(best["epoch"]),
        "epochs": len(result.history),
        "epochs_this_run": result.epochs_run,
        "resumed_from_epoch": result.start_epoch,
        "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 2),
        "device": result.device,
    }


def load_training_images(path, image_size: int = 64) -> np.ndarray:
    """The N x S x S x 3 uint8 training set, or ``BadInput`` naming the file and what is wrong with it
    (the step then fails without retries: the same file would fail the same way)."""
    from fashion_pipeline.common.distributed import BadInput

    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BadInput(f"{path}: not a readable .npy training set ({error})") from error
    try:
        validate_images(images, image_size)
    except ValueError as error:
        raise BadInput(f"{path}: {error}") from error
    return images


def main(argv: Optional[list[str]] = None) -> None:
    from fashion_pipeline.common.distributed import BadInput, distributed_setup, distributed_teardown, exit_not_retryable, parse_fault
    from fashion_pipeline.common.pipes import open_reporter

    args = build_parser().parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    rank, _, _ = distributed_setup()
    try:
        with open_reporter(rank) as reporter:
            images = load_training_images(args.data, config.image_size)
            log = reporter.log if rank == 0 else (lambda message: None)  # the ranks' numbers are the same
            result = train(images, args.out, config, log=log, inject_nan=parse_fault(args.inject_nan))
            if rank == 0:
                metadata = run_metadata(result)
                reporter.report_metadata(metadata)
                print(json.dumps(metadata), flush=True)
    except (TrainingDiverged, ResumeRefused, BadInput) as error:
        # Under torchrun every rank gets here with the same message (the losses are averaged over ranks).
        exit_not_retryable(error)
    finally:
        distributed_teardown()


if __name__ == "__main__":
    main()
