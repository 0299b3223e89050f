"""The try-on models' hyperparameters and file names, free of torch so the Dagster layer loads light.

Defaults are the papers' where the papers give them (0 means "the paper's value for this method"):
- CP-VTON (Wang et al. 2018, sergeywong/cp-vton ``train.py``): Adam lr 1e-4, betas (0.5, 0.999), batch 4,
  100k steps at a constant rate then 100k decaying linearly to 0 (per stage: GMM, then TOM), TPS grid 5 x 5,
  pose radius 5 at 256 px, ngf 64, features capped at 512, a U-Net with a 4 x 3 bottleneck (6 down-samplings at
  256 x 192), GMM loss L1 on the worn garment, TOM loss L1 + VGG (+ CP-VTON's mask L1, off here: see below).
- VITON (Han et al. 2018), seed 003's slide: the refinement loss -lambda_warp |alpha|_1 + lambda_TV |grad alpha|_1
  with lambda_warp = 0.1; lambda_TV = 5e-6 on a sum over a 256 x 192 picture, i.e. about 0.25 on our mean.
- CAGAN (Jetchev and Bergmann 2017), seed 000's slides: Adam at 2e-4 (beta1 0.5, DCGAN's); the slides show
  results at 9,000 iterations, our default step count. The weights of the alpha regulariser and the cycle
  loss are not on the slides; gamma_id 0.1 and gamma_cyc 1 are our choice (what we recall of the paper,
  not checked against it here).
- The encoder-decoder baseline trains like the TOM (same U-Net, inputs but the warp, optimiser and schedule).
- ``agnostic_image`` (VITON-HD, Choi et al. 2021) is off by default, as in CP-VTON.
- ``render_height`` 0 (every stage at one size) and ``hidden_weight`` 0 (the picture loss a plain mean over the
  picture), as in CP-VTON. Both are ours, for the demo: the TOM and the encoder-decoder may train at a larger
  size than the GMM, and the picture loss may weigh the hidden region (what the model must render) more.
The demo uses its own, much shorter settings (``tryon/model_assets.py``), measured to fit the CPU budget.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

METHODS = ("viton", "encoder_decoder", "cagan")
STAGES = {"viton": ("gmm", "tom"), "encoder_decoder": ("encoder_decoder",), "cagan": ("cagan",)}
MODEL_NAME = "model.pt"
HISTORY_NAME = "history.json"
PAPER_STEPS = {"gmm": 200_000, "tom": 200_000, "encoder_decoder": 200_000, "cagan": 9_000}
PAPER_LR = {"viton": 1e-4, "encoder_decoder": 1e-4, "cagan": 2e-4}


def checkpoint_name(stage: str) -> str:
    return f"checkpoint_{stage}.pt"


TOM_ONLY = {"num_downs", "l1", "ssim", "vgg", "vgg_weights", "agnostic_image", "alpha_reward", "alpha_tv",
            "alpha_to_warp_mask", "gamma_id", "gamma_cyc", "ndf", "render_height", "hidden_weight"}
RENDER_STAGES = ("tom", "encoder_decoder")  # the stages ``render_height`` applies to


@dataclass
class TrainConfig:
    method: str = "viton"
    steps: int = 0  # per stage (the TOM, the encoder-decoder, CAGAN); 0: the paper's
    gmm_steps: int = 0  # the GMM stage of viton; 0: the paper's
    batch_size: int = 4  # per process
    lr: float = 0.0  # 0: the paper's for the method
    beta1: float = 0.5
    beta2: float = 0.999
    constant_fraction: float = 0.5  # CP-VTON: keep_step / (keep_step + decay_step); then linear to 0
    ngf: int = 64
    max_channels: int = 512  # the GMM's feature width
    num_downs: int = 0  # U-Net down-samplings; 0: a 4-pixel-high bottleneck (CP-VTON's at 256)
    # VITON-HD's clothing-agnostic person image as a further TOM / encoder-decoder input, its shown pixels kept
    # (``tryon.inputs``); off: CP-VTON's representation only (its TOM must guess background and trousers)
    agnostic_image: bool = False
    # the TOM and the encoder-decoder train at this height (width 3/4 of it), the GMM at the trainer's --height,
    # its TPS evaluated at this size (a smooth map in [-1, 1] coordinates); 0: every stage at --height (CP-VTON).
    # CAGAN ignores it.
    render_height: int = 0
    # TOM / encoder-decoder picture loss weighted by 1 + hidden_weight on the hidden region (the upper body the
    # model renders; with the agnostic image the rest is the person's own pixels, whose error is 0); 0: a plain
    # mean over the picture (CP-VTON)
    hidden_weight: float = 0.0
    grid_size: int = 5
    radius: int = 0  # pose squares; 0: 5 scaled from 256 px to the height
    l1: float = 1.0
    ssim: float = 1.0
    vgg: float = 1.0  # used only with vgg_weights
    vgg_weights: str = ""  # a local torchvision VGG-19 state_dict; empty: no perceptual loss
    warp_mask: float = 0.0  # GMM: L1 between the warped product mask and the worn mask (not in CP-VTON's GMM)
    alpha_reward: float = 0.1  # VITON's lambda_warp
    alpha_tv: float = 0.25  # VITON's lambda_TV (see module doc)
    alpha_to_warp_mask: float = 0.0  # CP-VTON's L1(alpha, warped mask); off: the slide's loss is VITON's
    gamma_id: float = 0.1
    gamma_cyc: float = 1.0
    ndf: int = 64
    seed: int = 0
    max_train: int = 0  # training pairs read (0: all)
    checkpoint_every: int = 100  # steps
    log_every: int = 20
    device: str = "auto"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("steps", "gmm_steps", "num_downs", "radius", "max_train", "render_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hidden_weight < 0:
            raise ValueError(f"hidden_weight must be >= 0, got {self.hidden_weight}")
        if self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("batch_size, checkpoint_every and log_every must be >= 1")

    @property
    def stages(self) -> tuple[str, ...]:
        return STAGES[self.method]

    def stage_steps(self, stage: str) -> int:
        given = self.gmm_steps if stage == "gmm" else self.steps
        return given or PAPER_STEPS[stage]

    def learning_rate(self) -> float:
        return self.lr or PAPER_LR[self.method]

    def architecture(self, stage: str, world_size: int = 1) -> dict:
        """What a stage's checkpoint must agree on to be resumed (step counts excluded: raising them continues)."""
        skip = {"steps", "gmm_steps", "checkpoint_every", "log_every", "device"}
        if stage == "gmm":  # the try-on module's settings do not change the GMM: retuning them keeps its training
            skip |= TOM_ONLY
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return {**fields, "stage": stage, "lr": self.learning_rate(), "world_size": world_size}
