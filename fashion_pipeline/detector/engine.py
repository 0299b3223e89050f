"""The training loop: iteration-based SGD with warmup and step decay, as in Detectron.

Engineering on top of torchvision's ``references/detection/engine.py``:

- losses are summed on the device and read back every ``log_period`` steps, not with
  ``loss.item()`` each step (that host sync stalls the GPU queue);
- mixed precision (``torch.autocast`` + ``GradScaler``) on CUDA;
- a non-finite or exploding loss stops the run with a message saying when and what to change;
- ``checkpoint_last.pt`` is written atomically every ``checkpoint_period`` steps with model,
  optimizer, scheduler, scaler, iteration, RNG state and loss history, and a rerun resumes from it.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
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


def build_optimizer(model: torch.nn.Module, solver: SolverConfig):
    params = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.SGD(params, lr=solver.base_lr, momentum=solver.momentum, weight_decay=solver.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, solver))
    return optimizer, scheduler


@dataclasses.dataclass
class TrainState:
    iteration: int = 0
    history: list = dataclasses.field(default_factory=list)  # one dict per log window
    train_seconds: float = 0.0
    images_seen: int = 0
    first_window_loss: Optional[float] = None


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, state: TrainState, extra: dict) -> None:
    module = model.module if hasattr(model, "module") else model
    torch_save(path, {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "state": dataclasses.asdict(state),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        **extra,
    })


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, expected_spec: dict) -> TrainState:
    """Restore everything a resumed run needs; refuse a checkpoint of a different network."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("model_spec") != expected_spec:
        raise ValueError(f"{path} was trained with {checkpoint.get('model_spec')}, not {expected_spec}; "
                         "delete it or use another output folder")
    module = model.module if hasattr(model, "module") else model
    module.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    np.random.set_state(checkpoint["rng"]["numpy"])
    random.setstate(checkpoint["rng"]["python"])
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
    """Fail on a non-finite or exploding windowed loss, naming the iterations and the way out."""
    start, end, total = window["start"], window["iteration"], window["loss"]
    if not math.isfinite(total):
        raise TrainingDiverged(
            f"loss became {total} between iterations {start} and {end} (losses: "
            f"{ {k: window[k] for k in LOSS_NAMES} }); lower base_lr (now {solver.base_lr}) or raise warmup_iters. "
            f"The last good checkpoint is {checkpoint_path} (not overwritten by this window)")
    if state.first_window_loss is None:
        state.first_window_loss = total
    elif total > solver.divergence_factor * state.first_window_loss:
        raise TrainingDiverged(
            f"loss diverged: {total:.3f} at iterations {start}-{end} is more than {solver.divergence_factor}x "
            f"the first window's {state.first_window_loss:.3f}; lower base_lr (now {solver.base_lr})")


def train(model, dataset: CocoDetectionDataset, solver: SolverConfig, device, output_dir: Path,
          checkpoint_extra: dict, resume: bool = True, stop_after: int = 0,
          on_log: Optional[Callable[[dict], None]] = None, rank: int = 0, world_size: int = 1) -> TrainState:
    """Train until ``solver.max_iter`` (or ``stop_after`` more iterations, for time-boxed or test runs)."""
    output_dir = Path(output_dir)
    checkpoint_path = output_dir / CHECKPOINT_NAME
    model.to(device)
    optimizer, scheduler = build_optimizer(model, solver)
    use_amp = solver.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    state = TrainState()
    if resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, checkpoint_extra["model_spec"])
        if on_log:
            on_log({"event": "resumed", "iteration": state.iteration, "checkpoint": str(checkpoint_path)})
    else:
        seed_everything(solver.seed)
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    last_iteration = solver.max_iter if not stop_after else min(solver.max_iter, state.iteration + stop_after)
    if state.iteration >= last_iteration:
        return state

    loader = make_loader(dataset, solver, start_batch=state.iteration, rank=rank, world_size=world_size)
    model.train()
    running = torch.zeros(len(LOSS_NAMES), device=device)
    window_start, window_clock = state.iteration, time.perf_counter()
    for images, targets in loader:
        images, targets = to_device(images, targets, device)
        with torch.autocast(device.type, enabled=use_amp):
            loss_dict = model(images, targets)
        losses = torch.stack([loss_dict[name] for name in LOSS_NAMES])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses.sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += losses.detach().float()  # stays on the device: no host sync here
        state.iteration += 1

        done = state.iteration >= last_iteration
        checkpoint_due = state.iteration % solver.checkpoint_period == 0 or done
        # A checkpoint always closes a window first, so no checkpoint holds unchecked (NaN) weights.
        if state.iteration % solver.log_period == 0 or checkpoint_due:
            window = close_window(running, state, window_start, window_clock, optimizer, solver.batch_size * world_size)
            state.history.append(window)
            check_window(state, window, solver, checkpoint_path)
            if on_log and rank == 0:
                on_log(window)
            running.zero_()
            window_start, window_clock = state.iteration, time.perf_counter()
        if rank == 0 and checkpoint_due:
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, state, checkpoint_extra)
        if done:
            break
    return state


def close_window(running, state: TrainState, window_start: int, window_clock: float, optimizer, images_per_step: int) -> dict:
    """Read the window's mean losses back to the host (the one sync per window)."""
    steps = state.iteration - window_start
    if running.device.type == "cuda":
        torch.cuda.synchronize(running.device)
    seconds = time.perf_counter() - window_clock
    means = (running / steps).tolist()
    state.train_seconds += seconds
    state.images_seen += steps * images_per_step
    window = {"start": window_start, "iteration": state.iteration, "lr": optimizer.param_groups[0]["lr"],
              "seconds": seconds, "images_per_s": steps * images_per_step / max(seconds, 1e-9)}
    window.update(dict(zip(LOSS_NAMES, means)))
    window["loss"] = float(sum(means))
    return window


def distributed_setup() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; initialises the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return torch.distributed.get_rank(), local_rank, world_size
