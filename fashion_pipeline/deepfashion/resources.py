"""Where DeepFashion comes from: a real download, or the synthetic sample generated on demand.

Both implement ``DeepFashionSource.prepare(data_root, sample) -> Path`` (the root to convert), so the
asset does not care which one it got. ``source_from_env()`` picks: ``DEEPFASHION_ROOT`` set -> the real
root; unset -> the embedded sample under ``<data_root>/deepfashion_sample``.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.sample import SampleSpec, ensure_sample

ROOT_ENV_VAR = "DEEPFASHION_ROOT"
SAMPLE_FOLDER = "deepfashion_sample"


class DeepFashionSource(dg.ConfigurableResource, ABC):
    """A DeepFashion "Category and Attribute Prediction" root in one of its published layouts."""

    @abstractmethod
    def prepare(self, data_root: Path, sample: SampleSpec) -> Path:
        """Return the root to convert (making it first, for the sample)."""

    @property
    @abstractmethod
    def kind(self) -> str:
        """A short description for metadata."""


class LocalDeepFashion(DeepFashionSource):
    """The real benchmark as unpacked at ``root`` (``Anno_coarse/`` or ``Anno/`` or ``Anno_fine/``, ``Eval/``,
    ``Img/img/``; see ``layout``)."""

    root: str

    @property
    def kind(self) -> str:
        return "DeepFashion root"

    def prepare(self, data_root: Path, sample: SampleSpec) -> Path:
        """The root, once its layout is recognised (fails early, before any work, when it is not)."""
        root = Path(self.root).expanduser().resolve()
        try:
            layout.detect_layout(root)
        except layout.LayoutError as error:
            raise layout.LayoutError(f"{error} (set {ROOT_ENV_VAR} to the unpacked \"Category and Attribute "
                                     f"Prediction\" folder)") from error
        return root


class EmbeddedDeepFashionSample(DeepFashionSource):
    """The synthetic sample (``fashion_pipeline.deepfashion.sample``), generated under the data root when absent."""

    folder: str = SAMPLE_FOLDER

    @property
    def kind(self) -> str:
        return "embedded synthetic sample"

    def prepare(self, data_root: Path, sample: SampleSpec) -> Path:
        root = Path(data_root) / self.folder
        ensure_sample(root, sample)
        return root.resolve()


def source_from_env() -> DeepFashionSource:
    if os.environ.get(ROOT_ENV_VAR):
        return LocalDeepFashion(root=dg.EnvVar(ROOT_ENV_VAR))
    return EmbeddedDeepFashionSample()
