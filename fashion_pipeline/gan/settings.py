"""The DCGAN's hyperparameters and file names, free of torch so the Dagster code location loads light."""
from __future__ import annotations

from dataclasses import dataclass

STAT_NAMES = ("Loss_D", "Loss_G", "D_x", "D_G_z1", "D_G_z2")
CHECKPOINT_NAME = "checkpoint_last.pt"
GENERATOR_NAME = "generator.pt"
HISTORY_NAME = "history.json"
IMAGE_SIZES = (64, 128)
# The PyTorch DCGAN tutorial prints the current batch's statistics when ``i % 50 == 0``; the thesis's
# Table 5.2 quotes those prints, so each epoch also records the last batch it would have printed.
TUTORIAL_LOG_EVERY = 50


@dataclass
class TrainConfig:
    """Every hyperparameter; the defaults are the thesis's (section 4.4).

    ``batch_size`` is per process. Under torchrun the global batch is ``batch_size x world_size``;
    ``scale_lr`` then applies the linear rule ``lr x global_batch / reference_batch_size`` (Goyal et
    al.'s rule, which Detectron2 and torchvision's references use; for Adam on a GAN it is a heuristic,
    so it is off by default).
    """

    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    image_size: int = 64  # 64 or 128 (the slides' second resolution: one more up/down-sampling layer)
    lr: float = 2e-4
    beta1: float = 0.5
    batch_size: int = 128
    epochs: int = 200
    seed: int = 999  # the reference's manualSeed
    drop_last: bool = False  # the reference keeps the partial last batch
    scale_lr: bool = False
    reference_batch_size: int = 128  # the global batch ``lr`` is meant for
    compile: bool = False
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast; only used on CUDA
    channels_last: bool = True
    cuda_graphs: bool = True  # CUDA, one process: each full-batch step replays one captured graph
    cudnn_benchmark: bool = True
    checkpoint_every: int = 1  # epochs between checkpoint_last.pt writes (the last epoch is always written)
    # DiffAugment for small training sets (gan/augment.py): "" (the thesis: none) or e.g. "color,translation,cutout"
    diff_augment: str = ""
    # Random left-right flips of the real images (the figures are left-right symmetric): twice the
    # distinct images for the discriminator to memorise. Off in the thesis.
    flip: bool = False
    # > 0: train for this many optimiser steps, rounded up to whole epochs, instead of ``epochs``. A step
    # budget gives training sets of different sizes the same number of updates (an epoch of 128 crops is 8
    # steps at batch 16, of 458 images 29).
    steps: int = 0

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")

    def effective_lr(self, world_size: int = 1) -> float:
        if not self.scale_lr:
            return self.lr
        return self.lr * self.batch_size * world_size / self.reference_batch_size

    def epochs_for(self, steps_per_epoch: int) -> int:
        """How many epochs this config trains when an epoch is ``steps_per_epoch`` steps."""
        return -(-self.steps // steps_per_epoch) if self.steps else self.epochs

    def architecture(self, world_size: int = 1) -> dict:
        """The fields a checkpoint must agree on to be resumed (the world size: see ``dcgan.ResumeRefused``)."""
        return {"nz": self.nz, "ngf": self.ngf, "ndf": self.ndf, "image_size": self.image_size,
                "diff_augment": self.diff_augment, "flip": self.flip,
                "lr": self.effective_lr(world_size), "beta1": self.beta1, "batch_size": self.batch_size,
                "seed": self.seed, "drop_last": self.drop_last, "world_size": world_size}
