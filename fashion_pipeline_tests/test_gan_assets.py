"""The GAN stage's assets materialized through Dagster on a tiny temporary data root, with a stub detector."""
from __future__ import annotations

import json
import types

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.gan import assets, detect, training_sets
from fashion_pipeline_tests.records import assert_light_metadata, record, record_check

N_IMAGES = 32


class _StubBody(nn.Module):
    """Stands in for the ResNet body: an IntermediateLayerGetter-like dict of feature maps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)

    def forward(self, batch):
        return {"0": torch.relu(self.conv(batch))}


def _stub_inference():
    """``fashion_pipeline.detector.inference``'s interface: a full-body box on even-width images."""

    def load_detector(checkpoint_path, device):
        model = nn.Module()
        model.backbone = nn.Module()
        model.backbone.body = _StubBody().to(device)
        return model

    def predict(model, images, device, batch_size=8):
        outputs = []
        for image in images:
            w, h = image.size
            boxes = [[0.1 * w, 0.05 * h, 0.9 * w, 0.5 * h], [0.3 * w, 0.1 * h, 0.7 * w, 0.95 * h]]
            full_score = 0.9 if w % 2 == 0 else 0.3
            outputs.append({"boxes": np.array(boxes, np.float32), "labels": np.array([1, 3]),
                            "scores": np.array([0.95, full_score], np.float32)})
        return outputs

    return types.SimpleNamespace(load_detector=load_detector, predict=predict)


def _write_upstream(root):
    """pinterest_dataset and best_detector as their stages write them."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(N_IMAGES):
        width, height = 120 + index, 160
        image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(150, 255, 3)))
        ImageDraw.Draw(image).rectangle([0.35 * width, 0.1 * height, 0.65 * width, 0.95 * height],
                                        fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
        path = root / "pinterest_images" / "brand" / "images" / f"{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
        rows.append({"image_id": f"img{index:04d}", "file_path": str(path.relative_to(root)), "sha256": f"{index:064x}",
                     "width": width, "height": height, "brands": ["brand"], "pin_ids": [str(index)], "cluster_size": 1})
    (root / "pinterest_dataset").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(root / "pinterest_dataset" / "manifest.parquet", index=False)
    (root / "best_detector").mkdir(parents=True)
    (root / "best_detector" / "best.json").write_text(json.dumps(
        {"backbone": "stub", "checkpoint": "stub.pt", "AP": 0.5, "AP50": 0.8}))


def _record_upstream(instance, usable: bool = True):
    """What pinterest_dataset and best_detector record when they materialize, their checks included."""
    record(instance, "pinterest_dataset", {"manifest": "pinterest_dataset/manifest.parquet"}, data_version="dataset-v1")
    for check in ("no_near_duplicates_in_result", "every_input_accounted_for"):
        record_check(instance, "pinterest_dataset", check, True)
    record(instance, "best_detector", {"checkpoint": "stub.pt", "backbone": "stub"}, data_version="detector-v1")
    record_check(instance, "best_detector", "best_detector_is_usable", usable,
                 metadata={"AP50": 0.8 if usable else 0.1, "threshold": 0.5})


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "load_inference", _stub_inference)
    _write_upstream(tmp_path)
    return tmp_path


def _resources(root):
    return {"data_root": DataRoot(root=str(root)), "compute": ComputeDevice(device="cpu"),
            "pipes_subprocess_client": dg.PipesSubprocessClient()}


def _metadata(result, node):
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def _dcgan_config(epochs):
    return {"ops": {"dcgan": {"config": {"epochs": epochs, "batch_size": 16}}}}


@pytest.mark.slow
def test_gan_chain_backfill_resume_and_report(data_root):
    instance = dg.DagsterInstance.ephemeral()
    _record_upstream(instance)
    resources = _resources(data_root)

    upstream = dg.materialize([assets.pinterest_detections, assets.fullbody_crops], instance=instance,
                              resources=resources, run_config={"ops": {"pinterest_detections": {"config": {"batch_size": 4}}}})
    assert_light_metadata(upstream)
    detections = _metadata(upstream, "pinterest_detections")
    assert detections["images"] == N_IMAGES and detections["detections_full"] == N_IMAGES
    assert detections["detections_upper"] == N_IMAGES and detections["images_per_second"] > 0
    crops = _metadata(upstream, "fullbody_crops")
    assert crops["kept"] == N_IMAGES // 2 and crops["total"] == N_IMAGES  # even widths score 0.9
    assert "data:image/" in crops["score_histogram"] and "base64" in crops["samples"]
    assert crops["folder"].startswith("fullbody_crops/v/") and crops["folder_reused"] is False
    manifest = pd.read_parquet(data_root / crops["manifest"])
    for row in manifest.itertuples():
        with Image.open(data_root / row.crop_path) as crop:
            assert crop.width == crop.height == row.crop_side

    set_paths = {}
    for variant in training_sets.VARIANTS:
        built = dg.materialize([assets.dcgan_training_set], instance=instance, resources=resources, partition_key=variant)
        (check,) = built.get_asset_check_evaluations()
        assert check.passed and check.partition == variant and check.metadata["variant"].text == variant
        set_paths[variant] = _metadata(built, "dcgan_training_set")["path"]
        assert set_paths[variant].startswith(f"dcgan_training_set/{variant}/v/") and set_paths[variant].endswith(f"/{variant}.npy")
    sizes = {v: np.load(data_root / set_paths[v]).shape for v in training_sets.VARIANTS}
    assert sizes == {"cropped": (16, 64, 64, 3), "original": (32, 64, 64, 3), "subset": (16, 64, 64, 3)}

    # The ablation: one dcgan run per variant x seed partition on the same instance (seed 0, plus seed 1 of cropped).
    keys = [_key(v, "0") for v in training_sets.VARIANTS] + [_key("cropped", "1")]
    folders = {}
    for key in keys:
        variant, seed = key.keys_by_dimension["variant"], key.keys_by_dimension["seed"]
        result = dg.materialize([assets.dcgan], instance=instance, resources=resources, partition_key=str(key),
                                run_config=_dcgan_config(1))
        assert result.success
        assert_light_metadata(result)
        metadata = _metadata(result, "dcgan")
        for stat in ("Loss_D", "Loss_G", "D_x", "D_G_z1", "D_G_z2"):
            assert isinstance(metadata[stat], float) and isinstance(metadata["final_" + stat], float)
        assert metadata["best_epoch"] == 1 and metadata["resumed_from_epoch"] == 0
        assert metadata["optimizer_steps"] == {"original": 2}.get(variant, 1)  # 32 or 16 images at batch 16
        assert metadata["seed"] == seed and metadata["torch_seed"] == 999 + int(seed)
        assert "base64" in metadata["loss_chart"] and "base64" in metadata["real_vs_fake"]
        assert (data_root / metadata["resume_checkpoint"]).exists()  # in the resume cache, not the published folder
        assert metadata["generator"] == f"{metadata['folder']}/generator.pt"  # relative to the data root
        assert metadata["folder"].startswith(f"dcgan/{variant}/seed{seed}/v/")
        assert metadata["training_set_path"] == set_paths[variant] and "matched the sha256" in metadata["training_set_verified"]
        folders[str(key)] = data_root / metadata["folder"]
        (check,) = result.get_asset_check_evaluations()
        assert check.passed and check.partition == str(key) and check.metadata["seed"].text == seed
    assert instance.get_materialized_partitions(dg.AssetKey("dcgan")) == {str(k) for k in keys}
    seed0 = np.load(folders[str(_key("cropped", "0"))] / "fixed_noise_fakes.npy")
    seed1 = np.load(folders[str(_key("cropped", "1"))] / "fixed_noise_fakes.npy")
    assert not np.array_equal(seed0, seed1)  # the seed dimension really changes the run

    # Asking for more epochs continues from the checkpoint instead of starting over.
    resumed = _metadata(dg.materialize([assets.dcgan], instance=instance, resources=resources,
                                       partition_key=str(_key("cropped", "0")), run_config=_dcgan_config(2)), "dcgan")
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2 and resumed["epochs_this_run"] == 1
    history = json.loads((data_root / resumed["folder"] / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    first = json.loads((folders[str(_key("cropped", "0"))] / "history.json").read_text())
    assert [e["epoch"] for e in first["epochs"]] == [1]  # the 1-epoch materialization's folder is untouched
    # The same again (make demo's rerun): the trainer has nothing left to do, the same generator, the same folder.
    rerun = _metadata(dg.materialize([assets.dcgan], instance=instance, resources=resources,
                                     partition_key=str(_key("cropped", "0")), run_config=_dcgan_config(2)), "dcgan")
    assert rerun["folder"] == resumed["folder"] and rerun["folder_reused"] is True and rerun["epochs_this_run"] == 0

    report_config = {"ops": {"ablation_report": {"config": {"n_samples": 32, "kid_subset_size": 16, "kid_subsets": 5}}}}
    report = dg.materialize([assets.ablation_report], instance=instance, resources=resources, run_config=report_config)
    assert_light_metadata(report)
    metadata = _metadata(report, "ablation_report")
    assert metadata["feature_space"] == "detector_backbone" and metadata["left_out"] == "none"
    assert metadata["runs"] == "cropped/seed0, cropped/seed1, original/seed0, subset/seed0"
    assert metadata["cropped_seeds"] == 2 and metadata["original_seeds"] == 1
    for variant in training_sets.VARIANTS:
        assert metadata[f"{variant}_FID_vs_{variant}"] >= 0 and f"{variant}_KID_vs_original" in metadata
        assert metadata[f"{variant}_untrained_FID_vs_{variant}"] >= 0
        assert isinstance(metadata[f"{variant}_Loss_G"], float)
    report_folder = data_root / metadata["folder"]
    assert metadata["path"] == f"{metadata['folder']}/report.md" and "matched their recorded sha256" in metadata["inputs_verified"]
    written = json.loads((report_folder / "report.json").read_text())
    assert written["variants"] == list(training_sets.VARIANTS)
    cropped = written["table"]["cropped"]
    losses = [row["Loss_G"] for row in cropped["per_seed"].values()]
    assert cropped["best"]["Loss_G"] == pytest.approx(np.mean(losses)) and cropped["std"]["Loss_G"] == pytest.approx(np.std(losses, ddof=1))
    markdown = (report_folder / "report.md").read_text()
    # Nothing new: the same report folder is reused, and nothing is computed or written again.
    same = _metadata(dg.materialize([assets.ablation_report], instance=instance, resources=resources,
                                    run_config=report_config), "ablation_report")
    assert same["folder"] == metadata["folder"] and same["folder_reused"] is True
    assert same["cropped_KID_vs_cropped"] == metadata["cropped_KID_vs_cropped"]
    assert "Table 5.2" in markdown and "0.5139" in markdown and "not assessable: fewer than 2 seeds" in markdown

    # A new subset draw: dcgan[subset] was trained on the old one, so the report leaves it out.
    dg.materialize([assets.dcgan_training_set], instance=instance, resources=resources, partition_key="subset",
                   run_config={"ops": {"dcgan_training_set": {"config": {"subset_seed": 1}}}})
    again = _metadata(dg.materialize([assets.ablation_report], instance=instance, resources=resources,
                                     run_config=report_config), "ablation_report")
    assert again["variants"] == "cropped, original" and again["left_out"].startswith("subset/seed0 (trained on an older")
    assert "subset_Loss_G" not in again


def _key(variant: str, seed: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"variant": variant, "seed": seed})


def test_report_fails_clearly_when_no_dcgan_was_trained(data_root):
    result = dg.materialize([assets.ablation_report], resources=_resources(data_root),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "no DCGAN trained on the current training sets: materialize dcgan" in failure.description


def test_detections_refuse_a_detector_whose_usability_check_failed_in_an_earlier_run(data_root):
    instance = dg.DagsterInstance.ephemeral()
    _record_upstream(instance, usable=False)
    result = dg.materialize([assets.pinterest_detections], instance=instance, resources=_resources(data_root),
                            raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "upstream best_detector is not usable: check 'best_detector_is_usable' failed" in failure.description
    assert "AP50=0.1" in failure.description
    assert not (data_root / "pinterest_detections").exists() or not list((data_root / "pinterest_detections").rglob("*.parquet"))


def test_stage_contract():
    keys = {definition.key.to_user_string() for definition in assets.defs.assets}
    assert {"pinterest_detections", "fullbody_crops", "dcgan_training_set", "dcgan", "ablation_report"} <= keys
    assert set(assets.resources()) == {"pipes_subprocess_client"}  # dcgan trains in a child process
    assert set(assets.DEMO_RUN_CONFIG["ops"]) <= keys
    assert assets.dcgan_training_set.partitions_def.get_partition_keys() == ["cropped", "original", "subset"]
    assert len(assets.dcgan.partitions_def.get_partition_keys()) == 9  # 3 variants x 3 seeds
    assert [str(k) for k in assets.DEMO_DCGAN_PARTITIONS] == ["0|cropped", "0|original", "0|subset"]


# ---------------------------------------------------------------- crash safety: recorded folders are never touched

def _snapshot(folder):
    """Every file under ``folder`` with its bytes, to compare byte for byte."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _crops_and_set(instance, resources, threshold=0.5):
    crops = dg.materialize([assets.fullbody_crops], instance=instance, resources=resources, raise_on_error=False,
                           run_config={"ops": {"fullbody_crops": {"config": {"score_threshold": threshold}}}})
    return crops


def test_a_failed_run_leaves_every_recorded_folder_intact_and_a_rerun_copies_nothing(data_root, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    _record_upstream(instance)
    resources = _resources(data_root)
    dg.materialize([assets.pinterest_detections], instance=instance, resources=resources)
    good = _metadata(_crops_and_set(instance, resources), "fullbody_crops")
    good_folder = data_root / good["folder"]
    before = _snapshot(good_folder)
    assert len([name for name in before if name.startswith("crops/")]) == N_IMAGES // 2

    # 1. An exception halfway through writing the crops (a killed run, a full disk).
    real_write = assets.crops.write_crops

    def crash_halfway(root, boxes, out_dir, workers=4):
        real_write(root, boxes.head(3), out_dir, workers)
        raise OSError("no space left on device")

    monkeypatch.setattr(assets.crops, "write_crops", crash_halfway)
    crashed = _crops_and_set(instance, resources, threshold=0.6)
    assert not crashed.success
    monkeypatch.setattr(assets.crops, "write_crops", real_write)
    assert _snapshot(good_folder) == before
    assert [p.name for p in good_folder.parent.iterdir()] == [good_folder.name]  # no half-written folder left

    # 2. A failed blocking check: 0 crops. Recorded (with its failed check), in a folder of its own.
    red = _crops_and_set(instance, resources, threshold=0.99)
    assert not red.success and _metadata(red, "fullbody_crops")["kept"] == 0
    assert _metadata(red, "fullbody_crops")["folder"] != good["folder"]
    assert _snapshot(good_folder) == before
    refused = dg.materialize([assets.dcgan_training_set], instance=instance, resources=resources,
                             partition_key="cropped", raise_on_error=False)
    assert "check 'enough_crops' failed" in refused.get_step_failure_events()[0].step_failure_data.user_failure_data.description

    # 3. Back to the good config: the earlier folder is reused, nothing written again.
    written_at = {str(p): p.stat().st_mtime_ns for p in good_folder.rglob("*") if p.is_file()}
    again = _metadata(_crops_and_set(instance, resources), "fullbody_crops")
    assert again["folder"] == good["folder"] and again["folder_reused"] is True
    assert _snapshot(good_folder) == before
    assert {str(p): p.stat().st_mtime_ns for p in good_folder.rglob("*") if p.is_file()} == written_at
    assert len(list(good_folder.parent.iterdir())) == 2  # the good folder and the red one: no third copy


def test_dcgan_refuses_a_training_set_changed_since_it_was_recorded(data_root):
    instance = dg.DagsterInstance.ephemeral()
    _record_upstream(instance)
    resources = _resources(data_root)
    dg.materialize([assets.pinterest_detections, assets.fullbody_crops], instance=instance, resources=resources)
    built = _metadata(dg.materialize([assets.dcgan_training_set], instance=instance, resources=resources,
                                     partition_key="cropped"), "dcgan_training_set")
    path = data_root / built["path"]
    images = np.load(path)
    np.save(path, images[::-1].copy())  # rewritten behind Dagster's back (same shape: only the sha256 tells)
    result = dg.materialize([assets.dcgan], instance=instance, resources=resources, partition_key=str(_key("cropped", "0")),
                            run_config=_dcgan_config(1), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert f"{path} changed after dcgan_training_set[cropped] was materialized" in failure.description
    assert len(result.get_step_failure_events()) == 1  # an input problem: not retried
