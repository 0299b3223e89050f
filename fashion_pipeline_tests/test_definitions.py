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
}


def _assets_by_name():
    repo = defs.get_repository_def()
    return {key.to_user_string(): key for key in repo.asset_graph.get_all_asset_keys()}


def test_defs_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_snapshot():
    # A rename here breaks schedules, backfills and users' bookmarks: make it show.
    assert set(_assets_by_name()) == EXPECTED_ASSETS


def test_training_assets_use_gpu_pool():
    graph = defs.get_repository_def().asset_graph
    for name in ("fashion_detector", "dcgan"):
        node = graph.get(dg.AssetKey(name))
        assert node.pools == {"gpu"}, f"{name} must run in the 'gpu' concurrency pool"


def test_scrape_schedule_is_defined():
    schedules = defs.get_repository_def().schedule_defs
    assert any("pinterest" in schedule.name for schedule in schedules)


def test_instance_config_defines_gpu_pool_limit(tmp_path):
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
