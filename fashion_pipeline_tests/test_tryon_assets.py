"""The tryon stage through Dagster: tryon_pairs (synthetic, and a real-layout folder with bad files) and tryon_report."""
import json
import shutil

import dagster as dg
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.tryon import assets


def _run(asset, instance, root, **config):
    return dg.materialize([asset], instance=instance,
                          resources={"data_root": DataRoot(root=str(root)), "compute": ComputeDevice(device="cpu")},
                          run_config={"ops": {asset.key.to_user_string(): {"config": config}}}, raise_on_error=False)


def _metadata(result, name):
    return {k: v.value for k, v in result.asset_materializations_for_node(name)[0].metadata.items()}


def _check(result):
    return result.get_asset_check_evaluations()[0]


@pytest.mark.slow
def test_synthetic_pairs_then_report_each_in_a_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("TRYON_ROOT", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    pairs = _run(assets.tryon_pairs, instance, tmp_path, height=64, train=6, test=8, grid_rows=3)
    assert pairs.success and _check(pairs).passed
    meta = _metadata(pairs, "tryon_pairs")
    assert meta["folder"].startswith("tryon_pairs/v/") and meta["dataset_root"] == meta["folder"] + "/dataset"
    assert (meta["train_pairs"], meta["test_pairs"], meta["test_usable"], meta["width"]) == (6, 8, 8, 48)
    assert not meta["reused"] and not list((tmp_path / "tryon_pairs" / "v").glob(".staging-*"))
    again = _metadata(_run(assets.tryon_pairs, instance, tmp_path, height=64, train=6, test=8, grid_rows=3), "tryon_pairs")
    assert again["folder"] == meta["folder"] and again["reused"]  # same inputs: the published folder, untouched
    other = _metadata(_run(assets.tryon_pairs, instance, tmp_path, height=64, train=6, test=8, seed=1), "tryon_pairs")
    assert other["folder"] != meta["folder"] and (tmp_path / meta["folder"]).is_dir()  # the old version stays
    versions = [r.asset_materialization.tags["dagster/data_version"]
                for r in instance.fetch_materializations(dg.AssetKey("tryon_pairs"), limit=5).records]
    assert versions[1] == versions[2] != versions[0]  # same content, same data version; a new seed, a new one
    _run(assets.tryon_pairs, instance, tmp_path, height=64, train=6, test=8, grid_rows=3)  # current again

    report = _run(assets.tryon_report, instance, tmp_path, features="untrained", kid_subsets=10)
    assert report.success
    meta = _metadata(report, "tryon_report")
    folder = tmp_path / meta["folder"]
    assert meta["folder"].startswith("tryon_report/v/") and meta["pairs"] == 8 and not meta["reused"]
    manifest = pd.read_parquet(folder / "manifest.parquet")
    assert sorted(manifest["method"].unique()) == ["oracle_paste", "unchanged", "warped_paste"] and len(manifest) == 24
    assert all((folder / p).is_file() for p in manifest["output_path"]) and all((folder / p).is_file() for p in manifest["truth_path"])
    summary = json.loads((folder / "report.json").read_text())
    assert summary["setting"].startswith("unpaired") and "untrained" in summary["feature_space"]
    assert summary["methods"]["oracle_paste"]["ssim"]["mean"] > summary["methods"]["unchanged"]["ssim"]["mean"]
    assert "LPIPS" not in meta["table"]


@pytest.mark.slow
def test_a_real_layout_folder_with_bad_files_fails_the_check_with_counts(tmp_path, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    generated = _run(assets.tryon_pairs, instance, tmp_path / "gen", height=64, train=4, test=4, grid_rows=1)
    real = tmp_path / "viton"
    shutil.copytree(tmp_path / "gen" / _metadata(generated, "tryon_pairs")["dataset_root"], real)
    for path in (real / "test" / "image").glob("*__*"):  # a real set: no unpaired truth
        path.unlink()
    names = (real / "test_pairs.txt").read_text().split()
    (real / "test" / "cloth-mask" / names[1]).unlink()  # pair 1's garment has no mask
    parse = real / "test" / "image-parse" / names[2].replace(".jpg", ".png")  # pair 2's parse is RGB
    Image.open(parse).convert("RGB").save(parse)
    monkeypatch.setenv("TRYON_ROOT", str(real))
    result = _run(assets.tryon_pairs, instance, tmp_path / "data", height=64, max_bad_share=0.2)
    meta = _metadata(result, "tryon_pairs")
    assert meta["source"] == "directory" and meta["dataset_root"] == str(real.resolve())
    check = _check(result)
    assert not check.passed
    by_reason = check.metadata["by_reason"].value
    assert by_reason["test"] == {"missing_cloth_mask": 1, "parse_not_palette": 1} and by_reason["train"] == {}
    assert str(parse) in json.dumps(json.loads((tmp_path / "data" / meta["validation"]).read_text()))
    # the report refuses an upstream whose blocking check failed
    report = _run(assets.tryon_report, instance, tmp_path / "data", features="untrained")
    assert not report.success


def test_a_run_that_dies_while_writing_leaves_no_folder_behind(tmp_path, monkeypatch):
    monkeypatch.delenv("TRYON_ROOT", raising=False)
    real_write = assets.synthetic_tryon.write_dataset

    def write_then_die(root, spec):
        real_write(root, spec)
        raise RuntimeError("killed mid-materialization")

    monkeypatch.setattr(assets.synthetic_tryon, "write_dataset", write_then_die)
    result = _run(assets.tryon_pairs, dg.DagsterInstance.ephemeral(), tmp_path, height=64, train=2, test=2)
    assert not result.success
    assert list((tmp_path / "tryon_pairs" / "v").iterdir()) == []  # neither a version nor a staging folder
