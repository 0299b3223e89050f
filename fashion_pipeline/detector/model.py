"""Build torchvision Faster R-CNN + FPN for the thesis's backbones, offline.

ImageNet weights are never downloaded: they come from a configured local file or, when
present, from the torch hub cache under torchvision's own file name. Without them the
network trains from scratch, which needs trainable normalisation (``FrozenBatchNorm2d``
with identity statistics would freeze the features at random) and every layer trainable.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import misc as misc_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from fashion_pipeline.detector.constants import BACKBONES, CLASS_NAMES, DEMO_BACKBONE, NUM_CLASSES, THESIS_BACKBONES  # noqa: F401


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to rebuild the network; stored inside every checkpoint."""

    backbone: str = "resnet50"
    norm: str = "frozen_bn"  # frozen_bn (pretrained) | bn | gn (from scratch)
    trainable_backbone_layers: int = 3
    min_size: int = 300
    max_size: int = 512
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100
    # FPN and box-head widths: torchvision's defaults; the CPU demo narrows them (see assets.DEMO_RUN_CONFIG).
    fpn_channels: int = 256
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    representation_size: int = 1024

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DetectorSpec":
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        if "returned_layers" in values:
            values["returned_layers"] = tuple(values["returned_layers"])
        return cls(**values)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)


NORM_LAYERS = {"frozen_bn": misc_ops.FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "gn": _group_norm}


def hub_weight_filenames(backbone: str) -> list[str]:
    """torchvision's file names for the backbone's ImageNet weights, newest first."""
    weights_enum = get_model_weights(backbone)
    names = [Path(weights.url).name for weights in weights_enum]
    return sorted(set(names), key=names.index)


def find_pretrained_weights(backbone: str, explicit_path: Optional[str] = None) -> tuple[Optional[Path], str]:
    """Return (weights file or None, reason) without touching the network."""
    if explicit_path:
        path = Path(explicit_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_weights_path={explicit_path!r} does not exist")
        return path, f"configured file {path}"
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in hub_weight_filenames(backbone):
        if (cache / name).is_file():
            return cache / name, f"torch hub cache {cache / name}"
    expected = ", ".join(hub_weight_filenames(backbone))
    return None, f"no ImageNet weights for {backbone}: none configured and none of [{expected}] in {cache}"


def load_imagenet_weights(classifier: nn.Module, weights_path: Path) -> None:
    """Load ImageNet classification weights into the bare ResNet before it becomes a backbone."""
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    missing, unexpected = classifier.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise ValueError(f"{weights_path} does not fit the backbone: missing={missing[:5]} unexpected={unexpected[:5]}")


def freeze_early_layers(classifier: nn.Module, trainable_layers: int) -> None:
    """Train only the last ``trainable_layers`` of conv1, layer1..layer4 (Detectron's FREEZE_AT)."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_backbone_layers must be 0..5, got {trainable_layers}")
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trainable.append("bn1")
    for name, parameter in classifier.named_parameters():
        if not any(name.startswith(layer) for layer in trainable):
            parameter.requires_grad_(False)


def build_backbone(spec: DetectorSpec, weights_path: Optional[Path] = None) -> BackboneWithFPN:
    """ResNet/ResNeXt body + FPN over ``spec.returned_layers`` (+ a max-pooled top level)."""
    classifier = get_model(spec.backbone, weights=None, norm_layer=NORM_LAYERS[spec.norm])  # never downloads
    if weights_path is not None:
        load_imagenet_weights(classifier, weights_path)
    freeze_early_layers(classifier, spec.trainable_backbone_layers)
    return_layers = {f"layer{layer}": str(position) for position, layer in enumerate(spec.returned_layers)}
    stage2_channels = classifier.inplanes // 8
    in_channels = [stage2_channels * 2 ** (layer - 1) for layer in spec.returned_layers]
    return BackboneWithFPN(classifier, return_layers, in_channels, spec.fpn_channels, extra_blocks=LastLevelMaxPool())


def anchor_sizes(returned_layers: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """One anchor size per FPN level, 8x its stride: torchvision's 32..512 for layers 1-4 + pool."""
    strides = [2 ** (layer + 1) for layer in returned_layers]
    strides.append(strides[-1] * 2)
    return tuple((8 * stride,) for stride in strides)


def build_detector(spec: DetectorSpec, weights_path: Optional[Path] = None) -> FasterRCNN:
    """Faster R-CNN with an FPN on ``spec.backbone``; ImageNet weights loaded when a file is given."""
    if spec.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {spec.backbone!r}; choose one of {BACKBONES}")
    if spec.norm not in NORM_LAYERS:
        raise ValueError(f"unknown norm {spec.norm!r}; choose one of {sorted(NORM_LAYERS)}")
    backbone = build_backbone(spec, weights_path)
    sizes = anchor_sizes(spec.returned_layers)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    roi_pool = MultiScaleRoIAlign([str(i) for i in range(len(spec.returned_layers))], output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(spec.fpn_channels * 7 * 7, spec.representation_size)
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(spec.representation_size, NUM_CLASSES),
        min_size=spec.min_size,
        max_size=spec.max_size,
        rpn_pre_nms_top_n_train=spec.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=spec.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=spec.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=spec.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=spec.rpn_batch_size_per_image,
        box_batch_size_per_image=spec.box_batch_size_per_image,
        box_score_thresh=spec.box_score_thresh,
        box_detections_per_img=spec.box_detections_per_img,
    )


def resolve_spec(
    backbone: str,
    pretrained_weights_path: Optional[str] = None,
    norm: str = "auto",
    trainable_backbone_layers: int = 3,
    **sizes,
) -> tuple[DetectorSpec, Optional[Path], str]:
    """Decide pretrained vs scratch and the matching norm / trainable layers.

    Pretrained: FrozenBatchNorm2d and ``trainable_backbone_layers`` (Detectron's recipe).
    Scratch: BatchNorm2d and all 5 stages trainable, unless ``norm`` says otherwise.
    """
    weights_path, reason = find_pretrained_weights(backbone, pretrained_weights_path)
    if weights_path is not None:
        chosen_norm = "frozen_bn" if norm == "auto" else norm
        layers = trainable_backbone_layers
    else:
        chosen_norm = "bn" if norm == "auto" else norm
        if chosen_norm == "frozen_bn":
            raise ValueError(f"norm=frozen_bn cannot train from scratch ({reason})")
        layers = 5
    spec = DetectorSpec(backbone=backbone, norm=chosen_norm, trainable_backbone_layers=layers, **sizes)
    return spec, weights_path, reason


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Build a detector and print its parameter count and weight source.")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    parser.add_argument("--pretrained-weights-path", default=None)
    args = parser.parse_args(argv)
    spec, weights_path, reason = resolve_spec(args.backbone, args.pretrained_weights_path)
    model = build_detector(spec, weights_path)
    print(json.dumps({"spec": spec.to_dict(), "pretrained": weights_path is not None, "reason": reason,
                      "parameters": count_parameters(model)}, indent=2))


if __name__ == "__main__":
    main()
