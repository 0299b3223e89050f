"""Pick the torch device: the GPU when there is one, the CPU otherwise."""
from __future__ import annotations


def pick_device(preference: str = "auto"):
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={preference!r} was asked for but CUDA is not available")
    return device
