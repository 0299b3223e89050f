"""``pinterest_images`` through Dagster: one brand on a temporary data root, then an idempotent rerun."""
from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.pinterest import assets as pinterest_assets
from fashion_pipeline.pinterest.assets import (
    BRAND_PARTITIONS, DEMO_RUN_CONFIG, PinterestScraper, defs, pinterest_images, pinterest_rescrape_schedule,
)

STAGE_DEFS = dg.Definitions.merge(
    defs, dg.Definitions(resources={"data_root": DataRoot(), **pinterest_assets.resources()})
)
CONFIG = {"ops": {"pinterest_images": {"config": {"embedded_pins_per_board": 12, "scroll_pause_s": 0.2, "persistence": 2}}}}


def materialize(tmp_path, partition: str, scraper: PinterestScraper | None = None, instance=None):
    return dg.materialize(
        [pinterest_images],
        partition_key=partition,
        resources={"data_root": DataRoot(root=str(tmp_path)), "pinterest": scraper or PinterestScraper()},
        run_config=CONFIG,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def checks_of(result) -> dict:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def metadata_of(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("pinterest_images")
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.mark.slow
def test_one_brand_materializes_with_metadata_then_reruns_idempotently(tmp_path, monkeypatch):
    monkeypatch.setenv("PINTEREST_EMAIL", "user@example.org")
    monkeypatch.setenv("PINTEREST_PASSWORD", "secret-not-to-leak")
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(tmp_path, "hermes", instance=instance)
    assert result.success
    meta = metadata_of(result)
    assert meta["pins_found"] == 12 and meta["reached_end_of_board"] is True
    assert meta["board_boundary"] == "board_container" and meta["end_signal"] in ("heading", "container")
    assert meta["files_downloaded"] + meta["files_already_present"] + meta["failures_total"] == 12
    assert meta["files_downloaded"] > 0 and meta["logged_in"] is True
    assert all(isinstance(meta[f"failures_{reason}"], int) for reason in ("http_403", "timeout", "truncated"))
    assert meta["thumbnails"].startswith("![pins](data:image/")
    assert meta["manifest_path"].endswith("pinterest_images/hermes/manifest.parquet")
    assert "secret-not-to-leak" not in repr(meta) and "user@example.org" not in repr(meta)
    checks = checks_of(result)
    assert set(checks) == {"manifest_consistent", "scrape_health"} and all(c.passed for c in checks.values())
    assert checks["manifest_consistent"].metadata["rows"].value == meta["manifest_rows"]
    assert checks["manifest_consistent"].partition == "hermes" and checks["scrape_health"].metadata["brand"].text == "hermes"

    manifest = pd.read_parquet(tmp_path / "pinterest_images" / "hermes" / "manifest.parquet")
    assert list(manifest.columns) == ["pin_id", "page_url", "image_url", "file_path", "sha256", "width", "height", "brand", "scraped_at",
                                      "original_from", "source_format", "stored_as"]
    assert set(manifest["original_from"]) == {"srcset"}  # the page named every original
    assert (manifest["brand"] == "hermes").all() and manifest["pin_id"].is_unique
    assert all((tmp_path / rel).is_file() for rel in manifest["file_path"])

    rerun = materialize(tmp_path, "hermes", instance=instance)
    again = metadata_of(rerun)
    assert checks_of(rerun)["scrape_health"].metadata["previous_pins_found"].value == 12
    assert again["files_downloaded"] == 0
    assert again["files_already_present"] == meta["manifest_rows"]
    assert len(pd.read_parquet(tmp_path / "pinterest_images" / "hermes" / "manifest.parquet")) == len(manifest)


@pytest.mark.slow
def test_a_board_that_yields_nothing_fails_scrape_health_and_keeps_the_rows(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(tmp_path, "prada", instance=instance).success
    rows = len(pd.read_parquet(tmp_path / "pinterest_images" / "prada" / "manifest.parquet"))
    # A changed page layout: the pin selector matches nothing, as after a Pinterest redesign or a login wall.
    broken = materialize(tmp_path, "prada", PinterestScraper(selector_pin="div.no-such-pin"), instance=instance)
    assert not broken.success  # the blocking check fails the run: the weekly schedule shows red
    health = checks_of(broken)["scrape_health"]
    assert not health.passed and "0 pins" in health.metadata["reason"].text and health.partition == "prada"
    assert checks_of(broken)["manifest_consistent"].passed
    assert len(pd.read_parquet(tmp_path / "pinterest_images" / "prada" / "manifest.parquet")) == rows  # nothing lost


def test_scrape_health_rule():
    assert pinterest_assets.scrape_health(0, None, 0.5)[0] is False
    assert pinterest_assets.scrape_health(40, None, 0.5)[0] is True
    assert pinterest_assets.scrape_health(40, 100, 0.5) == (False, "the board yielded 40 pins, fewer than 50% of the 100 of its last healthy scrape")
    assert pinterest_assets.scrape_health(60, 100, 0.5)[0] is True


def test_partitions_schedule_and_job_are_defined():
    keys = BRAND_PARTITIONS.get_partition_keys()
    assert len(keys) == 20 and {"chloe", "hermes", "yves-saint-laurent"} <= set(keys)
    assert pinterest_rescrape_schedule.cron_schedule == "0 3 * * 1"
    # As the README says: on for the embedded site (this process's default mode), off for pinterest.com.
    assert pinterest_rescrape_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = STAGE_DEFS.get_job_def("pinterest_scrape_job")
    assert job.partitions_def.get_partition_keys() == keys
    assert "pinterest_images" in DEMO_RUN_CONFIG["ops"]


def test_schedule_requests_one_run_per_brand():
    with dg.build_schedule_context(instance=dg.DagsterInstance.ephemeral(),
                                   repository_def=STAGE_DEFS.get_repository_def()) as context:
        requests = list(STAGE_DEFS.get_schedule_def("pinterest_weekly_rescrape").evaluate_tick(context).run_requests)
    assert sorted(request.partition_key for request in requests) == sorted(BRAND_PARTITIONS.get_partition_keys())
    assert len({request.run_key for request in requests}) == len(requests)


@pytest.mark.slow  # a fresh interpreter imports dagster
def test_cron_comes_from_the_environment():
    # A fresh interpreter: the schedule is built at import, and reloading here would leave other
    # tests holding stale classes.
    code = "from fashion_pipeline.pinterest.assets import pinterest_rescrape_schedule as s; print(s.cron_schedule)"
    env = {**os.environ, "FASHION_PIPELINE_SCRAPE_CRON": "30 4 * * *"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "30 4 * * *"


def test_live_mode_without_credentials_refuses_login_always():
    scraper = PinterestScraper(mode="live", login="always", email_env_var="NO_SUCH_VAR_1", password_env_var="NO_SUCH_VAR_2")
    with pytest.raises(RuntimeError, match="NO_SUCH_VAR_1"):
        scraper._credentials()


def test_the_rescrape_schedule_is_off_in_live_mode():
    # Nobody scrapes pinterest.com on a timer by accident: live mode loads the schedule STOPPED.
    code = ("import fashion_pipeline.pinterest.assets as a; print(a.pinterest_rescrape_schedule.default_status.value)")
    for mode, expected in (("live", "STOPPED"), ("embedded", "RUNNING")):
        env = {**os.environ, "FASHION_PIPELINE_PINTEREST_MODE": mode}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected, (mode, out.stdout)
