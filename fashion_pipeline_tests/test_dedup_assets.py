"""``pinterest_dataset`` and its blocking checks through ``dagster.materialize`` on a temporary data root."""
from __future__ import annotations

import hashlib

import dagster as dg
import pandas as pd
import pytest
from PIL import ImageOps

from fashion_pipeline.common.atomic import write_bytes

from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.dedup import assets, dataset
from fashion_pipeline_tests.dedup_fixtures import build_fixture, distinct_image, jpeg_bytes
from fashion_pipeline.common import lineage
from fashion_pipeline.common.fingerprint import combine
from fashion_pipeline_tests.records import record_brand_scrapes, use_brands

CHECK_NAMES = {"no_near_duplicates_in_result", "every_input_accounted_for"}


@pytest.fixture(autouse=True)
def fixture_brands(monkeypatch, tmp_path):
    use_brands(monkeypatch, tmp_path, ["dior", "gucci", "prada", "valentino"])


def materialize(tmp_path, config: dict | None = None, instance=None):
    instance = instance or dg.DagsterInstance.ephemeral()
    record_brand_scrapes(instance, tmp_path)
    return dg.materialize(
        [assets.pinterest_dataset],
        resources={"data_root": DataRoot(root=str(tmp_path))},
        run_config={"ops": {"pinterest_dataset": {"config": config or {}}}},
        instance=instance,
        raise_on_error=False,
    )


def recorded_file(root, result, key: str):
    """A file the materialization's metadata names (relative to the data root): its own build folder."""
    return root / result.asset_materializations_for_node("pinterest_dataset")[0].metadata[key].value


def check_results(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def test_materialize_writes_dataset_and_reports_metadata(tmp_path):
    build_fixture(tmp_path)
    result = materialize(tmp_path, {"sample_pairs": 2})
    assert result.success
    metadata = result.asset_materializations_for_node("pinterest_dataset")[0].metadata
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    assert (values["input_count"], values["unique_count"], values["exact_duplicates"],
            values["near_duplicates"], values["quarantined"], values["clusters"]) == (11, 5, 2, 2, 2, 3)
    assert values["threshold_bits"] == dataset.DEFAULT_THRESHOLD
    assert values["brand_kept/dior"] == 2 and "| gucci |" in values["brand_contribution"]
    assert values["planted_pairs"] == 5 and values["planted_pairs_found"] == 5 and values["planted_recall"] == 1.0
    assert values["quarantine_reasons"] == {"undecodable": 1, "unreadable": 1}
    assert values["sample_duplicate_pairs"].count("](data:image/") == 2
    assert check_results(result) == {"no_near_duplicates_in_result": True, "every_input_accounted_for": True}
    manifest = pd.read_parquet(recorded_file(tmp_path, result, "manifest"))
    assert len(manifest) == 5 and manifest["image_id"].is_unique


def test_match_mirrors_merges_a_flipped_repost(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    brand = tmp_path / "pinterest_images" / "valentino"
    data = jpeg_bytes(ImageOps.mirror(distinct_image(3)))
    digest = hashlib.sha256(data).hexdigest()
    write_bytes(brand / "images" / f"{digest}.jpg", data)
    row = pd.read_parquet(tmp_path / "pinterest_images" / "prada" / "manifest.parquet").iloc[:1].copy()
    row[["pin_id", "brand", "sha256", "file_path"]] = ["90", "valentino", digest, f"pinterest_images/valentino/images/{digest}.jpg"]
    row.to_parquet(brand / "manifest.parquet", index=False)
    plain = materialize(tmp_path).asset_materializations_for_node("pinterest_dataset")[0].metadata
    mirrored = materialize(tmp_path, {"match_mirrors": True}).asset_materializations_for_node("pinterest_dataset")[0].metadata
    assert plain["unique_count"].value == 6 and mirrored["unique_count"].value == 5
    assert mirrored["files_from_cache"].value == 9 and mirrored["files_hashed"].value == 0


def test_checks_fail_and_block_on_bad_output(tmp_path, monkeypatch):
    build_fixture(tmp_path)
    original = dataset.write_outputs

    def write_broken_outputs(result, out_dir, cache):
        result.mapping = result.mapping.iloc[1:]  # lose an input row
        manifest = result.manifest.copy()
        manifest.loc[1, "phash"] = manifest.loc[0, "phash"]  # two kept images with the same signatures
        result.manifest = manifest
        cache = cache.set_index("sha256")
        cache.loc[manifest.sha256[1], "thumb"] = cache.loc[manifest.sha256[0], "thumb"]
        return original(result, out_dir, cache.reset_index())

    monkeypatch.setattr(dataset, "write_outputs", write_broken_outputs)
    result = materialize(tmp_path)
    assert check_results(result) == {"no_near_duplicates_in_result": False, "every_input_accounted_for": False}


def test_definitions_expose_the_stage_contract():
    assert [a.key.to_user_string() for a in assets.defs.assets] == ["pinterest_dataset"]
    assert assets.resources() == {}
    assert "pinterest_dataset" in assets.DEMO_RUN_CONFIG["ops"]
    spec = assets.pinterest_dataset.specs_by_key[dg.AssetKey("pinterest_dataset")]
    assert dg.AssetKey("pinterest_images") in {dep.asset_key for dep in spec.deps}
    check_specs = list(assets.pinterest_dataset.check_specs)
    assert {c.name for c in check_specs} == CHECK_NAMES and all(c.blocking for c in check_specs)


def test_merges_only_the_brands_of_the_current_brands_file(tmp_path, monkeypatch):
    build_fixture(tmp_path, with_bad_files=False)
    use_brands(monkeypatch, tmp_path, ["gucci", "prada", "chanel"])  # dior removed, chanel never scraped
    result = materialize(tmp_path)
    assert result.success
    values = {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node("pinterest_dataset")[0].metadata.items()}
    assert values["brands_not_in_brands_file"] == "dior" and values["brands_never_scraped"] == "chanel"
    assert values["brands_merged"] == 2 and values["input_count"] == 6
    mapping = pd.read_parquet(recorded_file(tmp_path, result, "mapping"))
    assert set(mapping["brand"]) == {"gucci", "prada"}


def metadata_values(result) -> dict:
    return {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node("pinterest_dataset")[0].metadata.items()}


SCRAPE_PARTITIONS = dg.StaticPartitionsDefinition(["dior", "gucci", "prada", "valentino"])


def record_scrape(instance, root, brand: str, passed: bool) -> None:
    """A real run of a stand-in ``pinterest_images[brand]`` (same key, partitions and blocking checks):
    it records the brand's manifest as it is, and its ``scrape_health`` result."""

    @dg.asset(name="pinterest_images", partitions_def=SCRAPE_PARTITIONS, check_specs=[
        lineage.partitioned_check(name, "pinterest_images", SCRAPE_PARTITIONS, name) for name in assets.SCRAPE_CHECKS])
    def stand_in(context):
        frame = pd.read_parquet(root / "pinterest_images" / brand / "manifest.parquet")
        return dg.MaterializeResult(
            metadata={"manifest_path": f"pinterest_images/{brand}/manifest.parquet", "manifest_rows": len(frame)},
            data_version=dg.DataVersion(combine(sorted(frame["sha256"].astype(str)))),
            check_results=[dg.AssetCheckResult(check_name="manifest_consistent", passed=True),
                           dg.AssetCheckResult(check_name="scrape_health", passed=passed,
                                               metadata={} if passed else {"reason": "12 pins against 300: a login wall?"})])

    dg.materialize([stand_in], instance=instance, partition_key=brand, raise_on_error=False)


def append_pins(root, brand: str, seeds: list[int]) -> None:
    """A later scrape adds pins to the brand's (append-only) manifest."""
    path = root / "pinterest_images" / brand / "manifest.parquet"
    frame = pd.read_parquet(path)
    extra = []
    for seed in seeds:
        data = jpeg_bytes(distinct_image(seed))
        digest = hashlib.sha256(data).hexdigest()
        write_bytes(root / f"pinterest_images/{brand}/images/{digest}.jpg", data)
        extra.append({**frame.iloc[0].to_dict(), "pin_id": f"9{seed}", "sha256": digest,
                      "file_path": f"pinterest_images/{brand}/images/{digest}.jpg"})
    pd.concat([frame, pd.DataFrame(extra)], ignore_index=True).to_parquet(path, index=False)


def run_dataset(instance, root):
    return dg.materialize([assets.pinterest_dataset], resources={"data_root": DataRoot(root=str(root))},
                          instance=instance, raise_on_error=False)


def test_a_brand_whose_latest_scrape_failed_is_served_from_its_last_healthy_scrape(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    instance = dg.DagsterInstance.ephemeral()
    for brand in ("dior", "gucci", "prada"):
        record_scrape(instance, tmp_path, brand, passed=True)
    healthy_gucci = pd.read_parquet(tmp_path / "pinterest_images/gucci/manifest.parquet")
    append_pins(tmp_path, "gucci", [70, 71])  # the next scrape adds two pins ...
    record_scrape(instance, tmp_path, "gucci", passed=False)  # ... and fails its health check
    result = run_dataset(instance, tmp_path)
    assert result.success
    values = metadata_values(result)
    assert values["brands_from_earlier_scrape"] == "gucci" and values["brands_left_out"] == "none"
    assert values["brands_merged"] == 3 and values["brands_from_latest_scrape"] == 2
    assert "| gucci | last healthy scrape |" in values["brand_sources"] and "scrape_health failed" in values["brand_sources"]
    mapping = pd.read_parquet(recorded_file(tmp_path, result, "mapping"))
    assert sorted(mapping.loc[mapping["brand"] == "gucci", "pin_id"]) == sorted(healthy_gucci["pin_id"].astype(str))
    assert set(mapping["brand"]) == {"dior", "gucci", "prada"}
    assert check_results(result) == {"no_near_duplicates_in_result": True, "every_input_accounted_for": True}


def test_a_brand_with_no_healthy_scrape_is_left_out_and_the_others_merged(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    instance = dg.DagsterInstance.ephemeral()
    record_brand_scrapes(instance, tmp_path, failing={"gucci": "scrape_health"})
    result = run_dataset(instance, tmp_path)
    assert result.success
    values = metadata_values(result)
    assert values["brands_left_out"] == "gucci" and values["brands_from_earlier_scrape"] == "none"
    assert values["brands_merged"] == 2 and "no earlier healthy scrape" in values["brand_sources"]
    mapping = pd.read_parquet(recorded_file(tmp_path, result, "mapping"))
    assert set(mapping["brand"]) == {"dior", "prada"}


def test_rows_flushed_by_an_unrecorded_scrape_are_not_merged(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    instance = dg.DagsterInstance.ephemeral()
    for brand in ("dior", "gucci", "prada"):
        record_scrape(instance, tmp_path, brand, passed=True)
    append_pins(tmp_path, "prada", [72])  # a scrape that crashed before it was recorded
    result = run_dataset(instance, tmp_path)
    assert result.success and metadata_values(result)["brands_from_latest_scrape"] == 3
    mapping = pd.read_parquet(recorded_file(tmp_path, result, "mapping"))
    assert "972" not in set(mapping["pin_id"]) and len(mapping) == 9


def test_every_brand_unhealthy_fails_naming_them(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    instance = dg.DagsterInstance.ephemeral()
    record_brand_scrapes(instance, tmp_path, failing={"dior": "scrape_health", "gucci": "manifest_consistent",
                                                       "prada": "scrape_health"})
    result = run_dataset(instance, tmp_path)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "no brand has a healthy recorded scrape" in failure.description
    assert all(brand in failure.description for brand in ("dior", "gucci", "prada"))


# ---------------------------------------------------------------- issue 19: never overwrite a recorded materialization

def _builds(root) -> list[str]:
    return sorted(p.name for p in (root / "pinterest_dataset" / "v").iterdir())


def _folder_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def rerun(instance, root, config: dict | None = None):
    """pinterest_dataset again on the scrapes already recorded."""
    return dg.materialize([assets.pinterest_dataset], resources={"data_root": DataRoot(root=str(root))},
                          run_config={"ops": {"pinterest_dataset": {"config": config or {}}}},
                          instance=instance, raise_on_error=False)


def test_a_rerun_with_nothing_new_reuses_the_build_and_writes_nothing(tmp_path):
    build_fixture(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(tmp_path, instance=instance)
    folder = recorded_file(tmp_path, first, "folder")
    assert folder.parent.name == "v" and not metadata_values(first)["folder_reused"]
    assert recorded_file(tmp_path, first, "manifest") == folder / "manifest.parquet"
    assert metadata_values(first)["manifest_sha256"] == hashlib.sha256((folder / "manifest.parquet").read_bytes()).hexdigest()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = rerun(instance, tmp_path)  # nothing new
    values = metadata_values(second)
    assert values["folder_reused"] is True and recorded_file(tmp_path, second, "folder") == folder
    assert values["files_hashed"] == 0 and values["unique_count"] == metadata_values(first)["unique_count"]
    assert _builds(tmp_path) == [folder.name]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert check_results(second) == {"no_near_duplicates_in_result": True, "every_input_accounted_for": True}
    assert (tmp_path / "pinterest_dataset" / dataset.CACHE_FILE).is_file()  # the shared cache, outside v/


def test_a_build_whose_checks_fail_leaves_the_recorded_one_intact_and_is_refused(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fashion_pipeline.gan.assets import _dataset_manifest

    build_fixture(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    good = materialize(tmp_path, instance=instance)
    good_folder = recorded_file(tmp_path, good, "folder")
    before = _folder_bytes(good_folder)
    original = dataset.write_outputs

    def lose_a_row(result, out_dir, cache):
        result.mapping = result.mapping.iloc[1:]
        return original(result, out_dir, cache)

    monkeypatch.setattr(dataset, "write_outputs", lose_a_row)
    bad = rerun(instance, tmp_path, {"threshold": 9})  # other settings: a new build
    assert check_results(bad)["every_input_accounted_for"] is False
    assert recorded_file(tmp_path, bad, "folder") != good_folder and _folder_bytes(good_folder) == before
    data_root = DataRoot(root=str(tmp_path))
    with pytest.raises(dg.Failure, match="every_input_accounted_for' failed in run " + bad.run_id):
        _dataset_manifest(SimpleNamespace(instance=instance), data_root)


def test_a_crash_while_writing_leaves_no_folder_and_the_consumer_checks_the_manifest(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fashion_pipeline.gan.assets import _dataset_manifest

    build_fixture(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    good = materialize(tmp_path, instance=instance)
    good_folder = recorded_file(tmp_path, good, "folder")
    before = _folder_bytes(good_folder)
    original = dataset.write_outputs

    def crash(result, out_dir, cache):
        original(result, out_dir, cache)
        raise OSError("disk full")  # after every file of the staging folder is written, before the rename

    monkeypatch.setattr(dataset, "write_outputs", crash)
    crashed = rerun(instance, tmp_path, {"threshold": 9})
    assert not crashed.success
    assert _builds(tmp_path) == [good_folder.name] and _folder_bytes(good_folder) == before
    assert lineage.latest(instance, "pinterest_dataset").run_id == good.run_id  # the crashed run recorded nothing
    data_root = DataRoot(root=str(tmp_path))
    # lineage's rule (issue 19.2): the crashed run's checks are PLANNED, but it materialized nothing, so the
    # good build stays usable as it was
    monkeypatch.setattr(dataset, "write_outputs", original)
    recorded, manifest = _dataset_manifest(SimpleNamespace(instance=instance), data_root)
    assert recorded.run_id == good.run_id and len(manifest) == 5 and _folder_bytes(good_folder) == before
    again = rerun(instance, tmp_path)  # the good build's inputs: its folder is reused
    assert metadata_values(again)["folder_reused"] is True and _builds(tmp_path) == [good_folder.name]
    manifest.iloc[:1].to_parquet(good_folder / "manifest.parquet", index=False)  # changed behind Dagster's back
    with pytest.raises(dg.Failure, match="changed after pinterest_dataset was materialized"):
        _dataset_manifest(SimpleNamespace(instance=instance), data_root)
