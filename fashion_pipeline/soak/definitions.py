"""The code location the soak's daemon loads: the project's definitions plus one schedule.

``soak_scrape`` re-scrapes every brand of the brands file (the soak points ``FASHION_PIPELINE_BRANDS``
at a few brands) every minute, through the project's own ``pinterest_scrape_job``, with the demo's
settings plus what the soak needs: the embedded site's loopback host allowed for images, and short
download timeouts so a stalled image costs seconds, not minutes. Once the harness writes
``<FASHION_PIPELINE_SOAK_DIR>/stop``, ticks are skipped and the daemon only drains.
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

import fashion_pipeline.definitions as project  # the module, so this one holds a single Definitions
from fashion_pipeline.pinterest import assets as pinterest_assets

SCHEDULE_NAME = "soak_scrape"
SOAK_DIR_ENV_VAR = "FASHION_PIPELINE_SOAK_DIR"
STOP_FILE = "stop"
# Merged over the demo's pinterest_images settings (pinterest.assets.DEMO_RUN_CONFIG).
SCRAPE_OVERRIDES = {"image_hosts": ["pinimg.com", "127.0.0.1"], "timeout_s": 4.0, "max_attempts": 3,
                    "backoff_base_s": 0.25}


def scrape_run_config() -> dict:
    demo = pinterest_assets.DEMO_RUN_CONFIG["ops"]["pinterest_images"]["config"]
    return {"ops": {"pinterest_images": {"config": {**demo, **SCRAPE_OVERRIDES}}}}


@dg.schedule(
    name=SCHEDULE_NAME,
    job_name=pinterest_assets.pinterest_scrape_job.name,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The soak's re-scrape: every brand of the brands file, every minute, one run per brand.",
)
def soak_scrape(context: dg.ScheduleEvaluationContext):
    soak_dir = os.environ.get(SOAK_DIR_ENV_VAR)
    if soak_dir and (Path(soak_dir) / STOP_FILE).exists():
        return dg.SkipReason("the soak is draining: no more scrapes")
    return [dg.RunRequest(run_key=slug, partition_key=slug, run_config=scrape_run_config())
            for slug in pinterest_assets.BRAND_PARTITIONS.get_partition_keys()]


defs = dg.Definitions.merge(project.defs, dg.Definitions(schedules=[soak_scrape]))
