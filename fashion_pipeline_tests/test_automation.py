"""After a re-scrape, the cheap assets follow by declarative automation; the training assets never do."""
import dagster as dg

from fashion_pipeline.definitions import defs
from fashion_pipeline.pinterest.assets import BRAND_PARTITIONS
from fashion_pipeline.gan.assets import dcgan_partitions
from fashion_pipeline.gan.training_sets import VARIANTS
from fashion_pipeline.detector.constants import BACKBONES
from fashion_pipeline_tests.records import record

PARTITIONS = {"pinterest_images": BRAND_PARTITIONS.get_partition_keys(), "fashion_detector": list(BACKBONES),
              "dcgan_training_set": list(VARIANTS), "dcgan": dcgan_partitions.get_partition_keys()}
CHAIN = ["deepfashion_coco", "pinterest_images", "pinterest_dataset", "fashion_detector", "best_detector",
         "pinterest_detections", "fullbody_crops", "dcgan_training_set", "dcgan", "ablation_report"]


def _materialize(instance, asset, version):
    for partition in PARTITIONS.get(asset, [None]):
        record(instance, asset, partition=partition, data_version=version)


def _requested(result) -> set[str]:
    return {name for name in CHAIN if result.get_num_requested(dg.AssetKey(name))}


def test_a_rescrape_flows_to_the_training_sets_but_never_retrains():
    instance = dg.DagsterInstance.ephemeral()
    for asset in CHAIN:
        _materialize(instance, asset, "v1")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert _requested(settled) == set()  # nothing changed, nothing runs

    record(instance, "pinterest_images", partition="chanel", data_version="v2")  # the weekly re-scrape of one brand
    # The unpartitioned chain below the scrape is requested in one tick (one run, in dependency order) ...
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert _requested(first) == {"pinterest_dataset", "pinterest_detections", "fullbody_crops"}
    for asset in ("pinterest_dataset", "pinterest_detections", "fullbody_crops"):
        _materialize(instance, asset, "v2")
    # ... then every partition of the training sets ...
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert _requested(second) == {"dcgan_training_set"}
    assert second.get_requested_partitions(dg.AssetKey("dcgan_training_set")) == set(VARIANTS)
    _materialize(instance, "dcgan_training_set", "v2")
    # ... and the training assets are stale but never requested: they wait for a user.
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert _requested(third) == set()


def test_a_newly_trained_backbone_is_ranked_although_other_backbones_were_never_trained():
    instance = dg.DagsterInstance.ephemeral()
    for asset in CHAIN:
        if asset != "fashion_detector":
            _materialize(instance, asset, "v1")
    record(instance, "fashion_detector", partition="resnet18", data_version="v1")  # the demo's backbone only
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    record(instance, "fashion_detector", partition="resnet18", data_version="v2")  # retrained by a user
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert "best_detector" in _requested(result) and "fashion_detector" not in _requested(result)


def test_a_brand_added_but_not_yet_scraped_does_not_hold_the_merge_back():
    instance = dg.DagsterInstance.ephemeral()
    for asset in CHAIN:
        if asset != "pinterest_images":
            _materialize(instance, asset, "v1")
    for brand in PARTITIONS["pinterest_images"]:
        if brand != "versace":  # the newest line of the brands file, never scraped yet
            record(instance, "pinterest_images", partition=brand, data_version="v1")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    record(instance, "pinterest_images", partition="chanel", data_version="v2")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert "pinterest_dataset" in _requested(result)


def test_training_assets_have_no_automation_and_the_cheap_ones_do():
    graph = defs.resolve_asset_graph()
    for name in ("pinterest_dataset", "pinterest_detections", "fullbody_crops", "dcgan_training_set"):
        assert graph.get(dg.AssetKey(name)).automation_condition is not None, name
    for name in ("fashion_detector", "dcgan", "pinterest_images", "deepfashion_coco"):
        assert graph.get(dg.AssetKey(name)).automation_condition is None, name


def _requested_after_an_update(absent: str, updated: str) -> set[str]:
    """Every asset of the chain materialized except ``absent`` (no partition at all); then ``updated`` changes."""
    instance = dg.DagsterInstance.ephemeral()
    for asset in CHAIN:
        if asset != absent:
            _materialize(instance, asset, "v1")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    _materialize(instance, updated, "v2")
    return _requested(dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor))


def test_ablation_report_waits_for_a_first_dcgan():
    # best_detector updates before any dcgan partition exists: the report would fail with "no DCGAN trained".
    requested = _requested_after_an_update(absent="dcgan", updated="best_detector")
    assert "ablation_report" not in requested
    assert "pinterest_detections" in requested  # the rest of the chain still follows best_detector


def test_best_detector_waits_for_a_first_backbone():
    requested = _requested_after_an_update(absent="fashion_detector", updated="deepfashion_coco")
    assert "best_detector" not in requested


def test_one_materialized_partition_is_enough():
    # The same update with one dcgan partition trained: the report is requested (the other eight may never be).
    instance = dg.DagsterInstance.ephemeral()
    for asset in CHAIN:
        if asset != "dcgan":
            _materialize(instance, asset, "v1")
    record(instance, "dcgan", partition="0|cropped", data_version="v1")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    _materialize(instance, "best_detector", "v2")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert "ablation_report" in _requested(result)
