"""The DCGAN's hyperparameters and file names, free of torch so the Dagster code location loads light."""
from __future__ import annotations

from dataclasses import dataclass

STAT_NAMES = ("Loss_D", "Loss_G", "D_x", "D_G_z1", "D_G_z2")
CHECKPOINT_NAME = "checkpoint_last.pt"
GENERATOR_NAME = "generator.pt"
HISTORY_NAME = "history.json"


@dataclass
class TrainConfig:
    """Every hyperparameter; the defaults are the thesis's (section 4.4)."""

    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    batch_size: int = 128
    epochs: int = 200
    seed: int = 999  # the reference's manualSeed
    compile: bool = False
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast; only used on CUDA
    channels_last: bool = True

    def architecture(self) -> dict:
        """The fields a checkpoint must agree on to be resumed."""
        return {"nz": self.nz, "ngf": self.ngf, "ndf": self.ndf, "lr": self.lr,
                "beta1": self.beta1, "batch_size": self.batch_size, "seed": self.seed}
