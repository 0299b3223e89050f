"""The project's one ``Definitions``: every stage's definitions merged, resources bound.

Each stage package exposes ``defs`` (assets, checks, schedules) in its ``assets.py`` and
``resources()`` for the resources it needs; this module only puts them together. The stages are
imported by name: one that fails to import fails the code location loudly, never silently shrinks it.

Loading stays light (no torch, torchvision or pycocotools): the webserver, the daemon and every
scrape run import this module, and the heavy imports happen inside the assets that need them.
``dg check defs`` and ``dg dev`` find this module through ``[tool.dg.project]`` in pyproject.toml.
"""
from __future__ import annotations

import os

import dagster as dg

from fashion_pipeline.common import deployment, settings, staleness
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.dedup import assets as dedup_assets
from fashion_pipeline.deepfashion import assets as deepfashion_assets
from fashion_pipeline.detector import assets as detector_assets
from fashion_pipeline.gan import assets as gan_assets
from fashion_pipeline.garments import assets as garment_assets
from fashion_pipeline.pinterest import assets as pinterest_assets
from fashion_pipeline.tryon import assets as tryon_assets
from fashion_pipeline.tryon import showcase_assets as tryon_showcase_assets

# Pipeline order.
STAGES = [deepfashion_assets, pinterest_assets, dedup_assets, detector_assets, gan_assets, garment_assets,
          tryon_assets, tryon_showcase_assets]

AUTOMATION_SENSOR_NAME = "fashion_automation"
# How often the daemon evaluates automation (Dagster's default for these sensors is 30 s); a test lowers it.
AUTOMATION_INTERVAL_ENV_VAR = "FASHION_PIPELINE_AUTOMATION_INTERVAL_S"


def _stage_modules():
    return list(STAGES)


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every automation condition (assets and checks), RUNNING from the daemon's first start.

    Defining it replaces Dagster's implicit ``default_automation_condition_sensor``, which starts STOPPED.
    """
    interval = int(os.environ.get(AUTOMATION_INTERVAL_ENV_VAR, "").strip() or 30)
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR_NAME,
        target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval,
        description="Declarative automation: after a scrape, the cheap assets downstream follow (pinterest_dataset, "
                    "detections, crops, training sets); the training assets never retrain by themselves. Running by "
                    "default; stop it here to pause automation (runs already launched finish).",
    )


# Every stage's DEMO_RUN_CONFIG merged: `make demo`'s settings, the demo jobs' config, and the
# defaults when FASHION_PIPELINE_SETTINGS=demo.
DEMO_RUN_CONFIG = settings.merge_demo_run_config(STAGES)


def _stage_defs() -> dg.Definitions:
    # Not kept at module scope: Dagster loads a module holding exactly one Definitions object.
    return dg.Definitions.merge(*(module.defs for module in STAGES))


# The assets as the stages define them: their config defaults are the thesis's settings.
STAGE_ASSETS = list(_stage_defs().assets or [])


def build_defs() -> dg.Definitions:
    resources: dict = {"data_root": DataRoot(), "compute": ComputeDevice()}
    for module in STAGES:
        resources.update(module.resources())
    # Local or Kubernetes is configuration only: FASHION_PIPELINE_DEPLOYMENT picks the executor (docs/deploy.md).
    gpu_ops = deployment.gpu_pool_ops(STAGE_ASSETS)
    stages = _stage_defs()
    return dg.Definitions(
        # The profile (FASHION_PIPELINE_SETTINGS) sets the defaults a run without config gets.
        assets=settings.apply_profile(STAGE_ASSETS, DEMO_RUN_CONFIG),
        asset_checks=[*(stages.asset_checks or []),
                      *staleness.partitions_in_sync_checks(STAGE_ASSETS, lambda: defs.resolve_asset_graph())],
        jobs=[*(stages.jobs or []), *settings.settings_jobs(STAGE_ASSETS, DEMO_RUN_CONFIG)],
        schedules=list(stages.schedules or []),
        sensors=[*(stages.sensors or []), automation_sensor()],
        resources=resources,
        executor=deployment.executor(gpu_ops),
    )


defs = build_defs()
