"""Issue 19 in the garment stage: every materialization has a folder of its own; a failed run (an exception
mid-write, a failed blocking check, a diverged trainer) leaves the recorded folders byte-identical, and a
rerun with nothing new reuses the folder and writes nothing."""
from __future__ import annotations

import dagster as dg
import pytest

from fashion_pipeline.common import atomic
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.garments import assets, patches
from fashion_pipeline.gan import assets as gan_assets, detect
from fashion_pipeline_tests.test_garment_assets import _instance, _metadata, _run, site_root  # noqa: F401 (fixture)
from fashion_pipeline_tests.test_gan_assets import _stub_inference


def _snapshot(folder) -> dict:
    """Every file under ``folder``: (sha256, mtime_ns, inode), so a rewrite with equal bytes shows too."""
    return {str(p.relative_to(folder)): (file_sha256(p), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _staging_left(root) -> list:
    return [str(p) for p in root.rglob(".staging-*")]


def _latest(instance, asset, partition=None) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset)) if partition is None else None
    if partition is not None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
        event = records[0].event_log_entry
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _fail_mid_write(*_, **__):
    raise OSError("disk full (injected)")


def test_masks_and_patches_reuse_their_folder_and_a_failed_run_leaves_it_intact(site_root, monkeypatch):
    instance = _instance()
    first = _run(assets.garment_masks, instance, site_root)
    assert first.success
    masks = _metadata(first, "garment_masks")
    folder = site_root / masks["folder"]
    before = _snapshot(folder)
    assert not masks["folder_reused"] and len(before) > 2
    assert masks["crops_manifest"] == "fullbody_crops/manifest.parquet"  # what gc keeps for the manifest's crop_path

    rerun = _run(assets.garment_masks, instance, site_root, workers=1, overlays=2)  # neither changes the masks
    again = _metadata(rerun, "garment_masks")
    assert rerun.success and again["folder"] == masks["folder"] and again["folder_reused"]
    assert _snapshot(folder) == before and again["wall_seconds"] == 0
    assert rerun.asset_materializations_for_node("garment_masks")[0].tags["dagster/data_version"] == \
        first.asset_materializations_for_node("garment_masks")[0].tags["dagster/data_version"]

    # an exception after the masks were written (the manifest's write): other settings, a staging folder, removed
    monkeypatch.setattr(atomic, "write_parquet", _fail_mid_write)
    failed = _run(assets.garment_masks, instance, site_root, iterations=2)
    monkeypatch.undo()
    assert not failed.success and "disk full" in failed.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert _snapshot(folder) == before and not _staging_left(site_root)
    assert _latest(instance, "garment_masks")["folder"] == masks["folder"]  # the record still names it

    category = patches.categories()[0]
    made = _run(assets.pattern_patches, instance, site_root, category)
    assert made.success
    recorded = _metadata(made, "pattern_patches")
    patches_folder = site_root / recorded["folder"]
    patches_before = _snapshot(patches_folder)
    assert recorded["sha256"] == file_sha256(site_root / recorded["path"])
    reused = _metadata(_run(assets.pattern_patches, instance, site_root, category), "pattern_patches")
    assert reused["folder"] == recorded["folder"] and reused["folder_reused"] and _snapshot(patches_folder) == patches_before

    monkeypatch.setattr(atomic, "write_text", _fail_mid_write)  # after the .npy is written into the staging folder
    assert not _run(assets.pattern_patches, instance, site_root, category, seed=1).success
    monkeypatch.undo()
    assert _snapshot(patches_folder) == patches_before and not _staging_left(site_root)

    # a failed blocking check: the masks it judged are recorded, the earlier folder is untouched, and
    # pattern_patches refuses them (the check targets the current materialization)
    red = _run(assets.garment_masks, instance, site_root, iterations=2, max_degenerate_share=-1.0)
    (check,) = red.get_asset_check_evaluations()
    assert not check.passed and _snapshot(folder) == before
    refused = _run(assets.pattern_patches, instance, site_root, category, seed=2)
    assert not refused.success and "masks_not_degenerate" in refused.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert _snapshot(patches_folder) == patches_before


def test_masks_readers_refuse_a_manifest_changed_after_it_was_recorded(site_root):
    instance = _instance()
    masks = _metadata(_run(assets.garment_masks, instance, site_root, margin=0.01), "garment_masks")
    manifest = site_root / masks["manifest"]
    original = manifest.read_bytes()
    try:
        manifest.write_bytes(original + b"x")  # rewritten in place behind the record's back
        refused = _run(assets.pattern_patches, instance, site_root, patches.categories()[0], seed=3)
        message = refused.get_step_failure_events()[0].event_specific_data.error.to_string()
        assert not refused.success and "changed after garment_masks was materialized" in message
    finally:
        manifest.write_bytes(original)


@pytest.mark.slow
def test_pattern_dcgan_trains_through_pipes_reuses_its_folder_and_a_diverged_run_is_not_retried(site_root, monkeypatch):
    monkeypatch.setattr(detect, "load_inference", _stub_inference)  # the KID's feature space: a stub backbone
    instance = _instance()
    assert _run(assets.garment_masks, instance, site_root).success
    category = next(c for c in patches.categories()
                    if _run(assets.pattern_patches, instance, site_root, c).get_asset_check_evaluations()[0].passed)
    first = _run(assets.pattern_dcgan, instance, site_root, category)
    assert first.success
    trained = _metadata(first, "pattern_dcgan")
    folder = site_root / trained["folder"]
    before = _snapshot(folder)
    assert trained["epochs_this_run"] == 1 and trained["generator_sha256"] == file_sha256(site_root / trained["generator"])
    assert set(before) == {"generator.pt", "history.json", "fixed_noise_fakes.npy", "patches_vs_generated.png"}

    rerun = _metadata(_run(assets.pattern_dcgan, instance, site_root, category), "pattern_dcgan")
    assert rerun["epochs_this_run"] == 0 and rerun["resumed_from_epoch"] == 1  # resumed from the cache, nothing trained
    assert rerun["folder"] == trained["folder"] and rerun["folder_reused"] and _snapshot(folder) == before

    # the trainer diverges on its first step: one attempt (no retry), its message, the recorded folder intact
    command = gan_assets._train_command
    with monkeypatch.context() as patched:
        patched.setattr(gan_assets, "_train_command", lambda *a: [*command(*a), "--inject-nan", "0:0"])
        diverged = _run(assets.pattern_dcgan, instance, site_root, category, epochs=2, resume=False)
    assert not diverged.success
    assert "non-finite loss" in diverged.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert not [e for e in diverged.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert _snapshot(folder) == before and not _staging_left(site_root)

    # restyled_garments reads the recorded generator, checked against its sha256; a rerun reuses its folder
    restyled = _metadata(_run(assets.restyled_garments, instance, site_root), "restyled_garments")
    again = _metadata(_run(assets.restyled_garments, instance, site_root), "restyled_garments")
    assert again["folder"] == restyled["folder"] and again["folder_reused"]
    (folder / "generator.pt").write_bytes((folder / "generator.pt").read_bytes()[:-1])  # truncated after recording
    refused = _run(assets.restyled_garments, instance, site_root, crops=2)
    assert not refused.success and "generator.pt" in refused.get_step_failure_events()[0].event_specific_data.error.to_string()
