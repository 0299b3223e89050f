"""Runs launched without config get a settings profile's values: demo jobs, thesis jobs, and the default profile."""
import os
import subprocess
import sys

import dagster as dg
import pytest
from pydantic import Field

from fashion_pipeline import definitions
from fashion_pipeline.common import settings
from fashion_pipeline.definitions import DEMO_RUN_CONFIG, STAGE_ASSETS, defs

DEMO_PINS = DEMO_RUN_CONFIG["ops"]["pinterest_images"]["config"]["embedded_pins_per_board"]


def _asset(name: str, assets=STAGE_ASSETS) -> dg.AssetsDefinition:
    return next(a for a in assets if isinstance(a, dg.AssetsDefinition) and a.key.to_user_string() == name)


def test_every_profile_has_a_described_job_per_partitioning():
    jobs = {job.name: job for job in defs.get_repository_def().get_all_jobs()}
    for profile in settings.PROFILES:
        for label in ("chain", "brand", "backbone", "variant", "variant_seed", "pattern"):
            job = jobs[f"{profile}_{label}"]
            assert settings.JOB_DESCRIPTIONS[profile] in job.description
    from fashion_pipeline.pinterest.assets import BRAND_PARTITIONS

    assert jobs["demo_brand"].partitions_def.get_partition_keys() == BRAND_PARTITIONS.get_partition_keys()
    assert jobs["demo_variant_seed"].partitions_def is not None and jobs["demo_chain"].partitions_def is None


def test_the_jobs_carry_each_profile_values_and_the_config_is_valid():
    jobs = {job.name: job for job in defs.get_repository_def().get_all_jobs()}
    demo = jobs["demo_brand"].get_run_config_for_partition_key("chanel")["ops"]["pinterest_images"]["config"]
    thesis = jobs["thesis_brand"].get_run_config_for_partition_key("chanel")["ops"]["pinterest_images"]["config"]
    assert demo["embedded_pins_per_board"] == DEMO_PINS == 24 and thesis["embedded_pins_per_board"] == 300
    detector_demo = jobs["demo_backbone"].get_run_config_for_partition_key("resnet18")["ops"]["fashion_detector"]["config"]
    detector_thesis = jobs["thesis_backbone"].get_run_config_for_partition_key("resnet18")["ops"]["fashion_detector"]["config"]
    assert detector_demo["max_iter"] == 200 and detector_thesis["max_iter"] > 10_000
    for name, job in jobs.items():  # each job's default config is valid for its own schema
        if name.startswith(settings.PROFILES):
            key = job.partitions_def.get_partition_keys()[0] if job.partitions_def else None
            assert dg.validate_run_config(job, job.get_run_config_for_partition_key(key) if key else job.run_config), name


def test_the_demo_profile_replaces_only_the_defaults():
    demo_assets = settings.apply_profile(STAGE_ASSETS, DEMO_RUN_CONFIG, "demo")
    fields = _asset("pinterest_images", demo_assets).op.config_schema.config_type.fields
    assert fields["embedded_pins_per_board"].default_value == 24 and not fields["embedded_pins_per_board"].is_required
    assert fields["min_pins_ratio"].default_value == 0.5  # not in DEMO_RUN_CONFIG: the thesis default stays
    thesis_fields = _asset("pinterest_images").op.config_schema.config_type.fields
    assert thesis_fields["embedded_pins_per_board"].default_value == 300
    assert settings.apply_profile(STAGE_ASSETS, DEMO_RUN_CONFIG, "thesis") == STAGE_ASSETS


class ToyConfig(dg.Config):
    pins: int = Field(default=300, description="thesis value")
    pause: float = 1.0


@dg.asset
def toy(config: ToyConfig) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pins": config.pins, "pause": config.pause})


def _toy_metadata(assets_def, run_config=None) -> dict:
    result = dg.materialize([assets_def], run_config=run_config or {}, instance=dg.DagsterInstance.ephemeral())
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def test_a_run_without_config_gets_the_replaced_defaults_and_config_still_wins():
    demo_toy = settings.with_config_defaults(toy, {"pins": 24})
    assert _toy_metadata(toy) == {"pins": 300, "pause": 1.0}
    assert _toy_metadata(demo_toy) == {"pins": 24, "pause": 1.0}
    assert _toy_metadata(demo_toy, {"ops": {"toy": {"config": {"pause": 0.5}}}}) == {"pins": 24, "pause": 0.5}
    assert _toy_metadata(demo_toy, {"ops": {"toy": {"config": {"pins": 7}}}})["pins"] == 7


def test_demo_settings_naming_an_unknown_field_fail_loudly():
    with pytest.raises(settings.SettingsError, match="no_such_field"):
        settings.with_config_defaults(toy, {"no_such_field": 1})


def test_an_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv(settings.SETTINGS_ENV_VAR, "fast")
    with pytest.raises(settings.SettingsError, match="FASHION_PIPELINE_SETTINGS='fast'"):
        settings.profile()


def test_the_environment_picks_the_code_location_defaults():
    code = ("import fashion_pipeline.definitions as d, dagster as dg; "
            "a = next(x for x in d.defs.assets if isinstance(x, dg.AssetsDefinition) and x.key.to_user_string() == 'fashion_detector'); "
            "print(a.op.config_schema.config_type.fields['max_iter'].default_value)")
    seen = {}
    for profile in ("", "demo", "thesis"):
        env = {**os.environ, settings.SETTINGS_ENV_VAR: profile}
        seen[profile] = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                       check=True).stdout.strip()
    assert seen["demo"] == "200" and seen[""] == seen["thesis"] != "200"


def test_make_dev_sets_the_demo_profile_and_can_be_switched():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def dry_run(*args):  # -n: print the recipe only; -o install: take the venv as made
        return subprocess.run(["make", "-n", "-o", "install", "dev", *args], cwd=root, capture_output=True,
                              text=True, check=True).stdout

    assert "FASHION_PIPELINE_SETTINGS=demo " in dry_run()
    assert "FASHION_PIPELINE_SETTINGS=thesis " in dry_run("SETTINGS=thesis")


@pytest.mark.slow
def test_one_brand_through_the_demo_job_with_no_config_scrapes_the_demo_pin_count(tmp_path, monkeypatch):
    # The code location's own defaults are the thesis's here (no FASHION_PIPELINE_SETTINGS): the job carries the demo's.
    monkeypatch.delenv(settings.SETTINGS_ENV_VAR, raising=False)
    monkeypatch.setenv("FASHION_PIPELINE_DATA", str(tmp_path))  # the data_root resource reads it at run time
    job = defs.resolve_job_def("demo_brand")
    result = job.execute_in_process(partition_key="hermes", instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (materialization,) = result.asset_materializations_for_node("pinterest_images")
    assert materialization.metadata["pins_found"].value == DEMO_PINS
    assert definitions.defs.resolve_job_def("thesis_brand").get_run_config_for_partition_key("hermes")["ops"][
        "pinterest_images"]["config"]["embedded_pins_per_board"] == 300
