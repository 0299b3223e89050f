"""The project's one ``Definitions``: every stage's definitions merged, resources bound.

Each stage package exposes ``defs`` (assets, checks, schedules) in its ``assets.py`` and
``resources()`` for the resources it needs; this module only puts them together.
"""
from __future__ import annotations

import importlib

import dagster as dg

from fashion_pipeline.common.resources import ComputeDevice, DataRoot

# Pipeline order; a stage that is not built yet is simply absent.
STAGES = ["deepfashion", "pinterest", "dedup", "detector", "gan"]


def _stage_modules():
    for stage in STAGES:
        try:
            yield importlib.import_module(f"fashion_pipeline.{stage}.assets")
        except ModuleNotFoundError as error:
            if error.name != f"fashion_pipeline.{stage}" and error.name != f"fashion_pipeline.{stage}.assets":
                raise


def build_defs() -> dg.Definitions:
    resources: dict = {"data_root": DataRoot(), "compute": ComputeDevice()}
    stage_defs = []
    for module in _stage_modules():
        stage_defs.append(module.defs)
        resources.update(getattr(module, "resources", lambda: {})())
    return dg.Definitions.merge(*stage_defs, dg.Definitions(resources=resources))


defs = build_defs()
