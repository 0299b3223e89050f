"""The whole ``Definitions`` loads, and its asset keys stay what users and schedules rely on."""
import dagster as dg

from fashion_pipeline.definitions import defs

EXPECTED_ASSETS = {
    "deepfashion_coco",
    "pinterest_images",
    "pinterest_dataset",
    "fashion_detector",
    "best_detector",
    "pinterest_detections",
    "fullbody_crops",
    "dcgan_training_set",
    "dcgan",
    "ablation_report",
    "garment_masks",
    "pattern_patches",
    "pattern_dcgan",
    "restyled_garments",
    "tryon_pairs",
    "tryon_model",
    "tryon_report",
    "tryon_showcase",
}


def _assets_by_name():
    repo = defs.get_repository_def()
    return {key.to_user_string(): key for key in repo.asset_graph.get_all_asset_keys()}


def test_defs_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_snapshot():
    # A rename here breaks schedules, backfills and users' bookmarks: make it show.
    assert set(_assets_by_name()) == EXPECTED_ASSETS


def test_every_accelerator_user_takes_a_gpu_pool_slot():
    graph = defs.get_repository_def().asset_graph
    for name in ("fashion_detector", "dcgan", "pinterest_detections", "ablation_report"):
        node = graph.get(dg.AssetKey(name))
        assert node.pools == {"gpu"}, f"{name} must run in the 'gpu' concurrency pool"


def test_every_asset_has_a_code_version():
    graph = defs.resolve_asset_graph()
    for name in EXPECTED_ASSETS:
        assert graph.get(dg.AssetKey(name)).code_version, name


def test_scrape_and_training_retry_with_backoff():
    for name in ("pinterest_images", "fashion_detector", "dcgan"):
        assets_def = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(name))
        policy = assets_def.op.retry_policy
        assert policy is not None and policy.max_retries >= 1 and policy.backoff == dg.Backoff.EXPONENTIAL, name


def test_checks_on_partitioned_assets_are_partitioned():
    for assets_def in defs.assets:
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.partitions_def is not None:
            for spec in assets_def.check_specs:
                assert spec.partitions_def == assets_def.partitions_def, spec.key


def test_loading_the_code_location_imports_no_torch_or_pycocotools():
    import subprocess
    import sys

    code = ("import sys, fashion_pipeline.definitions as d; d.defs.resolve_asset_graph(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'pycocotools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stage_that_fails_to_import_fails_loudly(monkeypatch):
    import importlib
    import sys

    import pytest

    import fashion_pipeline.gan

    monkeypatch.setitem(sys.modules, "fashion_pipeline.gan.assets", None)  # as if its import failed
    monkeypatch.delattr(fashion_pipeline.gan, "assets")
    monkeypatch.delitem(sys.modules, "fashion_pipeline.definitions")
    with pytest.raises(ImportError):
        importlib.import_module("fashion_pipeline.definitions")


def test_dg_check_defs_passes():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "DAGSTER_HOME": str(root)}
    out = subprocess.run([str(Path(sys.executable).with_name("dg")), "check", "defs"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_scrape_schedule_is_defined():
    schedules = defs.get_repository_def().schedule_defs
    assert any("pinterest" in schedule.name for schedule in schedules)


def test_instance_config_defines_gpu_pool_limit(tmp_path):
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_automation_runs_by_default():
    from fashion_pipeline.definitions import AUTOMATION_SENSOR_NAME

    sensors = {sensor.name: sensor for sensor in defs.get_repository_def().sensor_defs}
    # Ours replaces Dagster's implicit default_automation_condition_sensor, which starts STOPPED.
    assert set(sensors) == {AUTOMATION_SENSOR_NAME}
    sensor = sensors[AUTOMATION_SENSOR_NAME]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    conditioned = {key for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None}
    assert conditioned and conditioned <= sensor.asset_selection.resolve(graph)
