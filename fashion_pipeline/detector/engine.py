"""The training loop: iteration-based SGD with warmup and step decay, as in Detectron.

Engineering on top of torchvision's ``references/detection/engine.py``:

- losses are summed on the device and read back every ``log_period`` steps, not with
  ``loss.item()`` each step (that host sync stalls the GPU queue);
- mixed precision on CUDA: ``torch.autocast`` in float16 with a ``GradScaler``, or in bfloat16
  (``amp_dtype``; no scaler: bfloat16 has float32's range); ``compile_backbone`` compiles the
  backbone + FPN (most of the FLOPs; the RPN/RoI heads have data-dependent shapes);
  ``channels_last`` stores the convolutions' weights NHWC (the tensor cores' layout on CUDA);
- ``cache_images`` decodes every training image once, before the first step, into shared memory
  (``CocoDetectionDataset.cache_decoded``): the JPEG decode leaves the loop, and images the network
  would shrink are stored shrunk. Off by default (the thesis's recipe); on in ``--recipe fast``;
- a non-finite or exploding loss stops the run with a message saying when and what to change;
- ``checkpoint_last.pt`` is written atomically every ``checkpoint_period`` steps with model,
  optimizer, scheduler, scaler, iteration, RNG states (CPU, CUDA, numpy, Python; one set per rank)
  and loss history, and a rerun resumes from it. The RNG states are stored as numpy arrays, which
  ``torch.load``'s ``map_location`` leaves alone: they always come back as the CPU ByteTensors that
  ``torch.set_rng_state`` / ``torch.cuda.set_rng_state`` require, whatever device map the checkpoint
  is loaded with.

Under DDP (``torchrun``, one process per GPU; gloo on the CPU):

- each window's losses are averaged over the ranks (an ``all_reduce``, as torchvision's
  ``reduce_dict``) *before* the finiteness/divergence check, so every rank sees the same number and
  all stop together with the same message instead of one raising while the others hang in the next
  gradient all-reduce;
- the world size is part of the checkpoint: a resume with another world size is refused (the sampler
  shards the batch stream by world size, so the iterations done would no longer name the same data);
- learning-rate scaling (``scale_lr``): ``lr = base_lr * global_batch / reference_batch_size`` with
  ``global_batch = batch_size * world_size`` (the linear rule of Goyal et al., used by Detectron2's
  ``REFERENCE_WORLD_SIZE`` and torchvision's references). Off by default; the thesis's 0.0025 is the
  rate for 2 images per step, so ``reference_batch_size`` defaults to 2 (Detectron2's 0.02 for 16 is
  the same rule). The iteration schedule is not rescaled;
- from-scratch backbones with plain BatchNorm become ``SyncBatchNorm`` on CUDA (statistics over the
  global batch, not 2 images); the CPU (gloo) cannot sync BN, so it keeps per-rank BN there.
  ``norm=gn`` avoids batch statistics altogether.

Normalisation parameters (BN/GN/LN scales and shifts) get ``weight_decay_norm`` (0, Detectron2's
default), the rest ``weight_decay``.

Fault injection (tests only): ``FaultInjection`` makes one rank's loss NaN at one iteration, to
show that every rank stops together (``--inject-nan-at-iter`` / ``--inject-nan-rank``).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.profiler import record_function
from torch.utils.data import DataLoader

from fashion_pipeline.common.atomic import torch_save
from fashion_pipeline.detector.data import CocoDetectionDataset, GroupedBatchSampler, aspect_ratio_groups, collate

CHECKPOINT_NAME = "checkpoint_last.pt"
LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded; the message says at which iterations."""


@dataclasses.dataclass
class SolverConfig:
    """Detectron's solver with the thesis's values (section 4.2)."""

    max_iter: int = 50_000
    base_lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: tuple[int, ...] = (20_000, 40_000)
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    batch_size: int = 2
    hflip_prob: float = 0.5
    aspect_ratio_group_factor: int = 3
    num_workers: int = 2
    amp: bool = True
    log_period: int = 20
    checkpoint_period: int = 1000
    divergence_factor: float = 10.0
    seed: int = 42
    weight_decay_norm: float = 0.0
    scale_lr: bool = False
    reference_batch_size: int = 2
    amp_dtype: str = "float16"  # float16 (with GradScaler) | bfloat16
    compile_backbone: bool = False
    channels_last: bool = False
    cache_images: bool = False


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclasses.dataclass(frozen=True)
class FaultInjection:
    """Test-only hook: rank ``rank``'s loss becomes NaN at iteration ``nan_at_iter`` (1-based; 0 = never)."""

    nan_at_iter: int = 0
    rank: int = 0

    def poisons(self, iteration: int, rank: int) -> bool:
        return self.nan_at_iter > 0 and iteration == self.nan_at_iter and rank == self.rank


class ResumeRefused(ValueError):
    """A checkpoint that cannot be continued as asked (e.g. another world size); the message says what to do."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(iteration: int, solver: SolverConfig) -> float:
    """Linear warmup from ``warmup_factor`` to 1, times ``gamma`` per step passed."""
    decay = solver.gamma ** bisect.bisect_right(list(solver.lr_steps), iteration)
    if iteration >= solver.warmup_iters:
        return decay
    alpha = iteration / max(solver.warmup_iters, 1)
    return decay * (solver.warmup_factor * (1 - alpha) + alpha)


NORM_TYPES = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.LocalResponseNorm)


def effective_base_lr(solver: SolverConfig, world_size: int = 1) -> float:
    """``base_lr``, or with ``scale_lr`` the linear rule ``base_lr * batch_size * world_size / reference_batch_size``."""
    if not solver.scale_lr:
        return solver.base_lr
    return solver.base_lr * solver.batch_size * world_size / solver.reference_batch_size


def parameter_groups(model: torch.nn.Module, solver: SolverConfig) -> list[dict]:
    """Trainable parameters in two groups: normalisation layers (``weight_decay_norm``) and the rest."""
    norm, other, seen = [], [], set()
    for module in model.modules():
        for parameter in module.parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            (norm if isinstance(module, NORM_TYPES) else other).append(parameter)
    groups = [{"params": other, "weight_decay": solver.weight_decay}]
    if norm:
        groups.append({"params": norm, "weight_decay": solver.weight_decay_norm})
    return groups


def build_optimizer(model: torch.nn.Module, solver: SolverConfig, world_size: int = 1):
    optimizer = torch.optim.SGD(parameter_groups(model, solver), lr=effective_base_lr(solver, world_size),
                                momentum=solver.momentum, weight_decay=solver.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, solver))
    return optimizer, scheduler


@dataclasses.dataclass
class TrainState:
    iteration: int = 0
    history: list = dataclasses.field(default_factory=list)  # one dict per log window
    train_seconds: float = 0.0
    images_seen: int = 0
    first_window_loss: Optional[float] = None


def rng_states(device: Optional[torch.device] = None) -> dict:
    """This process's RNG states, as numpy uint8 arrays; the CUDA ones (every visible GPU) when ``device`` is CUDA.

    torchvision's RPN and RoI samplers draw their permutations on the model's device, so on CUDA
    the CUDA generator is part of what makes a resumed run equal to an uninterrupted one.
    numpy, not tensors: ``map_location`` moves tensors (a CUDA map would put the states on the GPU,
    where ``set_rng_state`` refuses them) but not arrays.
    """
    states = {"torch": torch.get_rng_state().numpy(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device is not None and device.type == "cuda":
        states["cuda"] = [state.numpy() for state in torch.cuda.get_rng_state_all()]
    return states


def cpu_byte_tensor(state) -> torch.Tensor:
    """A saved generator state as the CPU uint8 tensor ``set_rng_state`` takes (older checkpoints hold tensors)."""
    if isinstance(state, torch.Tensor):
        return state.to("cpu", torch.uint8)
    return torch.from_numpy(np.array(state, dtype=np.uint8, copy=True))


def checkpoint_rng_states(checkpoint: dict, rank: int = 0) -> dict:
    """Rank ``rank``'s RNG states from a loaded checkpoint, torch/CUDA ones as CPU ByteTensors."""
    states = dict(checkpoint.get("rng_per_rank", [checkpoint["rng"]])[rank])
    states["torch"] = cpu_byte_tensor(states["torch"])
    if states.get("cuda") is not None:
        states["cuda"] = [cpu_byte_tensor(state) for state in states["cuda"]]
    return states


def set_rng_states(states: dict) -> None:
    """Restore :func:`checkpoint_rng_states`' result."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    cuda_states = states.get("cuda")
    if cuda_states and torch.cuda.is_available():
        for index, state in enumerate(cuda_states[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """A checkpoint; ``load_state_dict`` moves model and optimizer state to their device, and the
    RNG states (numpy) are untouched by ``map_location``."""
    return torch.load(path, map_location=map_location, weights_only=False)


def _gather_rng_states(device, world_size: int) -> list[dict]:
    """Every rank's RNG states, in rank order (a collective: all ranks call it at the same step)."""
    mine = rng_states(device)
    if world_size <= 1:
        return [mine]
    gathered = [None] * world_size
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, state: TrainState, extra: dict,
                    rng_per_rank: Optional[list] = None, world_size: int = 1) -> None:
    module = model.module if hasattr(model, "module") else model
    rng_per_rank = rng_per_rank or [rng_states(next(module.parameters()).device)]
    torch_save(path, {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "state": dataclasses.asdict(state),
        "rng": rng_per_rank[0],
        "rng_per_rank": rng_per_rank,
        "world_size": world_size,
        **extra,
    })


def world_size_refusal(path: Path, saved: int, current: int, iteration: int) -> str:
    return (f"{path} was trained with world size {saved} (up to iteration {iteration}) and this run has world size "
            f"{current}: the data order and the global batch depend on it, so it is not resumed. Run with "
            f"{saved} process(es) (torchrun --nproc-per-node={saved}, the asset's nproc_per_node={saved}) to continue, "
            "or pass --restart (asset config restart=true) to train again from iteration 0")


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, expected_spec: dict,
                    rank: int = 0, world_size: int = 1, map_location="cpu") -> TrainState:
    """Restore everything a resumed run needs; refuse a checkpoint of a different network or world size."""
    checkpoint = read_checkpoint(path, map_location)
    if checkpoint.get("model_spec") != expected_spec:
        raise ValueError(f"{path} was trained with {checkpoint.get('model_spec')}, not {expected_spec}; "
                         "delete it or use another output folder")
    saved_world_size = checkpoint.get("world_size", 1)
    if saved_world_size != world_size:
        raise ResumeRefused(world_size_refusal(path, saved_world_size, world_size, checkpoint["state"]["iteration"]))
    module = model.module if hasattr(model, "module") else model
    module.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    set_rng_states(checkpoint_rng_states(checkpoint, rank))
    return TrainState(**checkpoint["state"])


def make_loader(dataset: CocoDetectionDataset, solver: SolverConfig, start_batch: int, rank: int, world_size: int) -> DataLoader:
    groups = aspect_ratio_groups(dataset.aspect_ratios(), solver.aspect_ratio_group_factor)
    sampler = GroupedBatchSampler(groups, solver.batch_size, seed=solver.seed, start_batch=start_batch,
                                  rank=rank, world_size=world_size, hflip_prob=solver.hflip_prob)
    # Its own generator: creating the loader must not draw from the global RNG, or a resumed run
    # would drift from an uninterrupted one.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=solver.num_workers, collate_fn=collate,
                      pin_memory=torch.cuda.is_available(), persistent_workers=solver.num_workers > 0,
                      generator=torch.Generator().manual_seed(solver.seed))


def to_device(images, targets, device):
    images = [image.to(device, non_blocking=True).float().div_(255) for image in images]
    targets = [{"boxes": t["boxes"].to(device, non_blocking=True), "labels": t["labels"].to(device, non_blocking=True)}
               for t in targets]
    return images, targets


def check_window(state: TrainState, window: dict, solver: SolverConfig, checkpoint_path: Path) -> None:
    """Fail on a non-finite or exploding windowed loss, naming the iterations and the way out.

    Under DDP ``window`` holds the losses averaged over all ranks (:func:`close_window`), so every
    rank raises the same error at the same iteration.
    """
    start, end, total = window["start"], window["iteration"], window["loss"]
    if not math.isfinite(total):
        ranks = f" averaged over {window['world_size']} ranks" if window.get("world_size", 1) > 1 else ""
        raise TrainingDiverged(
            f"loss became {total} between iterations {start} and {end} (losses{ranks}: "
            f"{ {k: window[k] for k in LOSS_NAMES} }); lower base_lr (now {solver.base_lr}) or raise warmup_iters. "
            f"The last good checkpoint is {checkpoint_path} (not overwritten by this window)")
    if state.first_window_loss is None:
        state.first_window_loss = total
    elif total > solver.divergence_factor * state.first_window_loss:
        raise TrainingDiverged(
            f"loss diverged: {total:.3f} at iterations {start}-{end} is more than {solver.divergence_factor}x "
            f"the first window's {state.first_window_loss:.3f}; lower base_lr (now {solver.base_lr})")


def prepare_model(model, solver: SolverConfig, device, world_size: int):
    """Device placement, SyncBatchNorm under DDP on CUDA, and the optional backbone compilation."""
    if world_size > 1 and device.type == "cuda":
        # Before the optimizer is built: the conversion replaces the BN modules (same state_dict keys).
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if solver.channels_last:
        # The model's transform batches images as NCHW; a conv with NHWC weights then runs NHWC
        # (cuDNN/oneDNN pick the layout from input or weight) and hands NHWC on down the backbone.
        model.to(memory_format=torch.channels_last)
    if solver.compile_backbone:
        # In place (nn.Module.compile): the state_dict keys stay those of the eager model, so
        # checkpoints load either way. dynamic: image sizes vary from batch to batch.
        model.backbone.compile(dynamic=True)
    return model


def train(model, dataset: CocoDetectionDataset, solver: SolverConfig, device, output_dir: Path,
          checkpoint_extra: dict, resume: bool = True, stop_after: int = 0,
          on_log: Optional[Callable[[dict], None]] = None, rank: int = 0, world_size: int = 1,
          fault: FaultInjection = FaultInjection()) -> TrainState:
    """Train until ``solver.max_iter`` (or ``stop_after`` more iterations, for time-boxed or test runs)."""
    output_dir = Path(output_dir)
    checkpoint_path = output_dir / CHECKPOINT_NAME
    model = prepare_model(model, solver, device, world_size)
    optimizer, scheduler = build_optimizer(model, solver, world_size)
    use_amp = solver.amp and device.type == "cuda"
    amp_dtype = AMP_DTYPES[solver.amp_dtype]
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    state = TrainState()
    if resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, checkpoint_extra["model_spec"],
                                rank=rank, world_size=world_size)
        if on_log and rank == 0:
            on_log({"event": "resumed", "iteration": state.iteration, "checkpoint": str(checkpoint_path)})
    else:
        seed_everything(solver.seed)
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    last_iteration = solver.max_iter if not stop_after else min(solver.max_iter, state.iteration + stop_after)
    if state.iteration >= last_iteration:
        return state

    if solver.cache_images:
        module = model.module if hasattr(model, "module") else model
        cache = dataset.cache_decoded(max(module.transform.min_size), module.transform.max_size, solver.num_workers)
        if on_log and rank == 0:
            on_log({"event": "images cached", "iteration": state.iteration, "images": len(dataset),
                    "bytes": cache.nbytes})
    loader = make_loader(dataset, solver, start_batch=state.iteration, rank=rank, world_size=world_size)
    model.train()
    running = torch.zeros(len(LOSS_NAMES), device=device)
    window_start, window_clock = state.iteration, time.perf_counter()
    for images, targets in loader:
        # The labels name the loop's parts in bench/detector_profile.py's torch.profiler tables
        # (a few microseconds a step when no profiler runs).
        with record_function("detector.train: to_device"):
            images, targets = to_device(images, targets, device)
        with record_function("detector.train: forward"), torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            loss_dict = model(images, targets)
        losses = torch.stack([loss_dict[name] for name in LOSS_NAMES]).float()
        if fault.poisons(state.iteration + 1, rank):
            losses = losses * float("nan")
        with record_function("detector.train: backward + step"):
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses.sum()).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        running += losses.detach()  # stays on the device: no host sync here
        state.iteration += 1

        done = state.iteration >= last_iteration
        checkpoint_due = state.iteration % solver.checkpoint_period == 0 or done
        # A checkpoint always closes a window first, so no checkpoint holds unchecked (NaN) weights.
        if state.iteration % solver.log_period == 0 or checkpoint_due:
            window = close_window(running, state, window_start, window_clock, optimizer, solver.batch_size, world_size)
            state.history.append(window)
            check_window(state, window, solver, checkpoint_path)
            if on_log and rank == 0:
                on_log(window)
            running.zero_()
            window_start, window_clock = state.iteration, time.perf_counter()
        if checkpoint_due:
            rng_per_rank = _gather_rng_states(device, world_size)  # collective: every rank takes part
            if rank == 0:
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, state, checkpoint_extra,
                                rng_per_rank=rng_per_rank, world_size=world_size)
        if done:
            break
    return state


def close_window(running, state: TrainState, window_start: int, window_clock: float, optimizer,
                 batch_size: int, world_size: int = 1) -> dict:
    """Read the window's mean losses back to the host (the one sync per window).

    Under DDP the sums are first averaged over the ranks (torchvision's ``reduce_dict``), so every
    rank checks, logs and stops on the same numbers. A NaN on any one rank makes the mean NaN.
    """
    steps = state.iteration - window_start
    images_per_step = batch_size * world_size
    if world_size > 1:
        torch.distributed.all_reduce(running)  # SUM; every rank reaches this line at the same iteration
        running.div_(world_size)
    if running.device.type == "cuda":
        torch.cuda.synchronize(running.device)
    seconds = time.perf_counter() - window_clock
    means = (running / steps).tolist()
    state.train_seconds += seconds
    state.images_seen += steps * images_per_step
    window = {"start": window_start, "iteration": state.iteration, "lr": optimizer.param_groups[0]["lr"], "world_size": world_size,
              "seconds": seconds, "images_per_s": steps * images_per_step / max(seconds, 1e-9)}
    window.update(dict(zip(LOSS_NAMES, means)))
    window["loss"] = float(sum(means))
    return window


