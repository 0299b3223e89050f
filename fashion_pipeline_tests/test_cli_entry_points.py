"""The plain modules' command lines on a data root laid out as materializations lay it out (``<asset>/.../v/<version>/``).

Each CLI takes explicit input paths; without them it reads the newest published folder
(``versions.latest_published``), never a fixed path, and writes a new folder of its own.
"""
import json
import os
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.common import atomic, versions
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.gan import crops, detect, training_sets


def _publish(root: Path, asset: str, *parts: str, version: str, files: dict, age_s: float = 0.0) -> versions.Published:
    """A published folder as a materialization leaves it; ``age_s`` back-dates it (published earlier)."""
    with versions.staging(root, asset, *parts) as out:
        for name, write in files.items():
            write(out.path(name))
        published = out.publish(version)
    if age_s:
        stamp = published.folder.stat().st_mtime - age_s
        os.utime(published.folder, (stamp, stamp))
    return published


def _parquet(frame: pd.DataFrame):
    return lambda path: atomic.write_parquet(path, frame)


def _json(value: dict):
    return lambda path: atomic.write_json(path, value)


def _images(root: Path, count: int) -> pd.DataFrame:
    """Scraped images under pinterest_images/, and the dataset manifest rows that name them."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        relative = f"pinterest_images/brand/images/{index:02d}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (120, 80, 3), dtype=np.uint8)).save(root / relative)
        rows.append({"image_id": f"img{index:02d}", "file_path": relative, "width": 80, "height": 120})
    return pd.DataFrame(rows)


@pytest.fixture
def data_root(tmp_path):
    """Two pinterest_dataset builds (the newer has 4 images), a detector and the best_detector naming it."""
    root = tmp_path / "data"
    manifest = _images(root, 4)
    _publish(root, "pinterest_dataset", version="old", files={"manifest.parquet": _parquet(manifest.head(1))},
             age_s=600)
    _publish(root, "pinterest_dataset", version="new", files={"manifest.parquet": _parquet(manifest)})
    detector = _publish(root, "fashion_detector", "resnet18", version="d1",
                        files={"model_final.pt": lambda p: p.write_bytes(b"weights")})
    checkpoint = detector.relative_file("model_final.pt")
    _publish(root, "best_detector", version="b1", files={"best.json": _json(
        {"backbone": "resnet18", "checkpoint": checkpoint, "checkpoint_sha256": file_sha256(root / checkpoint)})})
    (root / "pinterest_dataset" / "v" / ".staging-1-dead").mkdir()  # a killed run's leftovers: never "latest"
    return root


def _stub_detector(monkeypatch) -> list:
    """Replaces the detector: one full-body box per image; records the checkpoint it was loaded from."""
    loaded = []

    def predict(model, images, device, batch_size=8):
        return [{"boxes": np.array([[10, 20, 60, 100]], np.float32), "labels": np.array([3]),
                 "scores": np.array([0.9], np.float32)} for _ in images]

    stub = types.SimpleNamespace(load_detector=lambda path, device: loaded.append(path) or object(), predict=predict)
    monkeypatch.setattr(detect, "load_inference", lambda: stub)
    return loaded


def _only_version(root: Path, asset: str, *parts: str) -> versions.Published:
    found = versions.published_folders(root, asset, *parts)
    assert len(found) == 1, [p.relative for p in found]
    return found[0]


# ---------------------------------------------------------------- versions.latest_published

def test_latest_published_is_the_newest_complete_folder_and_can_require_a_file(tmp_path):
    assert versions.latest_published(tmp_path, "a") is None  # nothing published yet
    _publish(tmp_path, "a", "p", version="older", files={"x.npy": lambda p: p.write_bytes(b"1")}, age_s=60)
    _publish(tmp_path, "a", "p", version="newer", files={"y.npy": lambda p: p.write_bytes(b"2")})
    (tmp_path / "a" / "p" / "v" / ".staging-99-abcd").mkdir()  # newest of all, but not published
    assert [p.version for p in versions.published_folders(tmp_path, "a", "p")] == ["older", "newer"]
    assert versions.latest_published(tmp_path, "a", "p").version == "newer"
    assert versions.latest_published(tmp_path, "a", "p", containing="x.npy").version == "older"
    assert versions.latest_published(tmp_path, "a", "p").relative == "a/p/v/newer"
    with pytest.raises(FileNotFoundError, match=r"no published folder with z.npy under .*a/p/v: materialize a first, "
                                                r"or pass --z"):
        versions.latest_published_file(tmp_path, "a", "p", name="z.npy", flag="--z")


# ---------------------------------------------------------------- gan.detect

def test_detect_cli_reads_the_newest_manifest_and_best_detector_and_writes_a_new_folder(data_root, monkeypatch):
    loaded = _stub_detector(monkeypatch)
    detect.main(["--data-root", str(data_root), "--device", "cpu"])
    best = json.loads((data_root / "best_detector/v/b1/best.json").read_text())
    assert loaded == [str(data_root / best["checkpoint"])]
    detections = pd.read_parquet(_only_version(data_root, "pinterest_detections").file("detections.parquet"))
    assert list(detections["image_id"]) == ["img00", "img01", "img02", "img03"]  # the newer build, not the old one
    assert not (data_root / "pinterest_detections" / "detections.parquet").exists()  # no fixed path any more

    # explicit inputs win over the defaults
    old_manifest = data_root / "pinterest_dataset/v/old/manifest.parquet"
    detect.main(["--data-root", str(data_root), "--device", "cpu", "--manifest", str(old_manifest),
                 "--checkpoint", str(data_root / "elsewhere.pt")])
    assert loaded[-1] == str(data_root / "elsewhere.pt")
    sizes = sorted(len(pd.read_parquet(p.file("detections.parquet")))
                   for p in versions.published_folders(data_root, "pinterest_detections"))
    assert sizes == [1, 4]


def test_detect_cli_refuses_a_changed_checkpoint_and_says_what_is_missing(data_root, monkeypatch, tmp_path):
    _stub_detector(monkeypatch)
    atomic.write_bytes(data_root / "fashion_detector/resnet18/v/d1/model_final.pt", b"other weights")
    with pytest.raises(ValueError, match=r"model_final.pt changed since .*best.json recorded it"):
        detect.main(["--data-root", str(data_root), "--device", "cpu"])
    empty = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match="materialize pinterest_dataset first, or pass --manifest"):
        detect.main(["--data-root", str(empty), "--device", "cpu"])


# ---------------------------------------------------------------- gan.crops -> gan.training_sets

def test_crops_and_training_sets_clis_chain_through_the_newest_published_folders(data_root, monkeypatch):
    _stub_detector(monkeypatch)
    detect.main(["--data-root", str(data_root), "--device", "cpu"])
    crops.main(["--data-root", str(data_root), "--threshold", "0.5"])
    published = _only_version(data_root, "fullbody_crops")
    manifest = pd.read_parquet(published.file("manifest.parquet"))
    assert len(manifest) == 4
    for crop_path in manifest["crop_path"]:  # named where it lies after publishing, relative to the data root
        assert crop_path.startswith(published.relative + "/crops/")
        with Image.open(data_root / crop_path) as crop:
            assert crop.width == crop.height == 80  # the 50 x 80 box made square (side 80), inside the 80 x 120 image
    mtime = published.file("manifest.parquet").stat().st_mtime_ns
    monkeypatch.setenv("FASHION_PIPELINE_DATA", str(data_root))  # the data root's usual default
    crops.main([])  # nothing new: the same folder, not rewritten
    assert _only_version(data_root, "fullbody_crops").file("manifest.parquet").stat().st_mtime_ns == mtime

    training_sets.main(["--data-root", str(data_root), "--variant", "cropped"])
    cropped = _only_version(data_root, "dcgan_training_set", "cropped")
    assert np.load(cropped.file("cropped.npy")).shape == (4, 64, 64, 3)
    training_sets.main(["--data-root", str(data_root), "--variant", "original", "--dataset-manifest",
                        str(data_root / "pinterest_dataset/v/old/manifest.parquet")])
    original = _only_version(data_root, "dcgan_training_set", "original")
    assert np.load(original.file("original.npy")).shape == (1, 64, 64, 3)  # the manifest given, not the newest
    assert list(pd.read_parquet(original.file("original.parquet"))["image_id"]) == ["img00"]


def test_training_sets_cli_without_crops_says_which_flag_to_pass(data_root):
    with pytest.raises(FileNotFoundError, match="materialize fullbody_crops first, or pass --crops-manifest"):
        training_sets.main(["--data-root", str(data_root), "--variant", "subset"])


# ---------------------------------------------------------------- gan.report

def _history(epochs: int) -> dict:
    stats = {"Loss_D": 0.6, "Loss_G": 2.0, "D_x": 0.6, "D_G_z1": 0.4, "D_G_z2": 0.4}
    return {"epochs": [{"epoch": epoch, **stats} for epoch in range(1, epochs + 1)]}


def _dcgan_folder(root: Path, variant: str, version: str, epochs: int, age_s: float = 0.0) -> versions.Published:
    import torch

    from fashion_pipeline.gan import dcgan

    def generator(path):
        model = dcgan.Generator(nz=8, ngf=4, image_size=64)
        torch.save({"nz": 8, "ngf": 4, "image_size": 64, "state_dict": model.state_dict()}, path)

    fakes = np.random.default_rng(1).integers(0, 255, (64, 64, 64, 3), dtype=np.uint8)
    return _publish(root, "dcgan", variant, "seed0", version=version, age_s=age_s, files={
        dcgan.HISTORY_NAME: _json(_history(epochs)), dcgan.GENERATOR_NAME: generator,
        "fixed_noise_fakes.npy": lambda p: atomic.save_npy(p, fakes)})


def _mean_colour_space(captured: list):
    import torch

    from fashion_pipeline.gan import quality

    def make(inception_weights, checkpoint, device):
        captured.append(checkpoint)
        return quality.FeatureSpace("mean_colour", "per-channel means", lambda batch: batch.mean(dim=(2, 3)), 32,
                                    torch.device("cpu"))
    return make


def test_report_cli_scores_the_newest_runs_against_the_newest_training_sets(data_root, monkeypatch):
    from fashion_pipeline.gan import quality, report

    captured = []
    monkeypatch.setattr(quality, "make_feature_space", _mean_colour_space(captured))
    rng = np.random.default_rng(2)
    for variant in ("cropped", "original"):
        _dcgan_folder(data_root, variant, "old", epochs=2, age_s=600)
        _dcgan_folder(data_root, variant, "new", epochs=1)
        _publish(data_root, "dcgan_training_set", variant, version="t1", files={
            f"{variant}.npy": lambda p: atomic.save_npy(p, rng.integers(0, 255, (40, 64, 64, 3), dtype=np.uint8))})
    report.main(["--data-root", str(data_root), "--n-samples", "16"])
    best = json.loads((data_root / "best_detector/v/b1/best.json").read_text())
    assert captured == [str(data_root / best["checkpoint"])]  # the newest best_detector's backbone as features
    written = _only_version(data_root, "ablation_report")
    result = json.loads(written.file("report.json").read_text())
    assert result["runs"] == {"cropped": ["0"], "original": ["0"]}
    assert result["table"]["cropped"]["epochs"] == "1"  # the newer run (1 epoch), not the older (2)
    assert result["quality"]["cropped"]["0"]["vs_cropped"]["n_real"] == 40
    assert written.file("fakes_side_by_side.png").is_file()

    # --run names the folders: only those are reported
    report.main(["--data-root", str(data_root), "--n-samples", "16",
                 "--run", "cropped", "0", str(data_root / "dcgan/cropped/seed0/v/old")])
    reports = [json.loads(p.file("report.json").read_text())
               for p in versions.published_folders(data_root, "ablation_report")]
    named = [r for r in reports if r["runs"] == {"cropped": ["0"]}]
    assert len(reports) == 2 and len(named) == 1 and named[0]["table"]["cropped"]["epochs"] == "2"


def test_report_cli_without_any_run_says_what_to_do(data_root):
    from fashion_pipeline.gan import report

    with pytest.raises(FileNotFoundError, match="no published dcgan folder .*materialize dcgan first, or pass --run"):
        report.main(["--data-root", str(data_root)])


# ---------------------------------------------------------------- detector.selection

def test_selection_cli_reads_a_data_roots_published_detector_folders(data_root, tmp_path, capsys):
    from fashion_pipeline.detector import selection

    val = tmp_path / "val.json"
    val.write_text("{}")
    metrics = {"backbone": "resnet18", "AP": 0.5, "AP50": 0.7, "parameters": 1, "val_json_sha256": file_sha256(val),
               "checkpoint": "model_final.pt"}
    _publish(data_root, "fashion_detector", "resnet50", version="m1", files={
        "model_final.pt": lambda p: p.write_bytes(b"w"), "metrics.json": _json({**metrics, "backbone": "resnet50"})})
    output = tmp_path / "best.json"
    selection.main([str(data_root / "fashion_detector"), "--val-json", str(val), "--output", str(output)])
    # resnet18's folder holds no metrics.json: not a finished training
    assert json.loads(output.read_text())["checkpoint"] == "fashion_detector/resnet50/v/m1/model_final.pt"
