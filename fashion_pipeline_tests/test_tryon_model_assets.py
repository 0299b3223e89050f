"""tryon_model through Dagster: one partition per method, trained through Pipes, resumed, published and recorded;
a divergence fails without retries."""
import dagster as dg
import pandas as pd
import pytest
import torch

from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.tryon import assets, model_assets

TINY = dict(steps=2, gmm_steps=2, batch_size=2, ngf=4, max_channels=16, ndf=4, log_every=1, checkpoint_every=1)


def _resources(root):
    return {"data_root": DataRoot(root=str(root)), "compute": ComputeDevice(device="cpu"),
            "pipes_subprocess_client": dg.PipesSubprocessClient()}


def _train(instance, root, method, **config):
    return dg.materialize([model_assets.tryon_model], instance=instance, resources=_resources(root), partition_key=method,
                          run_config={"ops": {"tryon_model": {"config": {**TINY, **config}}}}, raise_on_error=False)


def _metadata(result):
    return {k: v.value for k, v in result.asset_materializations_for_node("tryon_model")[0].metadata.items()}


@pytest.mark.slow
def test_each_method_is_a_partition_trained_through_pipes_and_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv("TRYON_ROOT", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    pairs = dg.materialize([assets.tryon_pairs], instance=instance, resources=_resources(tmp_path),
                           run_config={"ops": {"tryon_pairs": {"config": {"height": 64, "train": 4, "test": 4}}}})
    assert pairs.success
    assert set(model_assets.method_partitions.get_partition_keys()) == {"viton", "encoder_decoder", "cagan"}

    first = _train(instance, tmp_path, "viton")
    assert first.success
    meta = _metadata(first)
    assert meta["method"] == "viton" and meta["gmm_steps"] == 2 and meta["tom_steps"] == 2
    assert "L1 + SSIM" in meta["perceptual_loss"] and "SSIM" in meta["losses"]
    assert meta["folder"].startswith("tryon_model/viton/v/")
    model = tmp_path / meta["model"]
    saved = torch.load(model, weights_only=False)
    assert saved["method"] == "viton" and set(saved["state_dicts"]) == {"gmm", "tom"}
    assert first.get_asset_check_evaluations()[0].passed

    more = _metadata(_train(instance, tmp_path, "viton", steps=3, gmm_steps=3))  # more steps: continues both stages
    assert more["gmm_resumed_from_step"] == 2 and more["tom_resumed_from_step"] == 2
    assert more["resume_dir"] == meta["resume_dir"] and more["model"] != meta["model"] and model.is_file()

    found = model_assets.recorded_models(instance, tmp_path, ["viton", "cagan"])
    assert list(found) == ["viton"] and found["viton"] == tmp_path / more["model"]  # cagan never trained: left out

    # the report adds the trained method (and its warp alone) beside the baselines, with the comparison
    report = dg.materialize([assets.tryon_report], instance=instance, resources=_resources(tmp_path),
                            run_config={"ops": {"tryon_report": {"config": {"features": "untrained", "kid_subsets": 5}}}})
    assert report.success
    meta = {k: v.value for k, v in report.asset_materializations_for_node("tryon_report")[0].metadata.items()}
    folder = tmp_path / meta["folder"]
    manifest = pd.read_parquet(folder / "manifest.parquet")
    assert {"viton", "viton_warp", "unchanged"} <= set(manifest["method"]) and "cagan" not in set(manifest["method"])
    assert manifest.loc[manifest["method"] == "viton", "mask_iou"].between(0, 1).all()
    assert "Targets" in meta["model_scores_and_targets"] and "grid_viton" in meta
    assert (folder / "grid_viton.png").is_file() and (folder / "comparison.json").is_file()


@pytest.mark.slow
def test_a_diverged_training_fails_without_retries(tmp_path, monkeypatch):
    monkeypatch.delenv("TRYON_ROOT", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([assets.tryon_pairs], instance=instance, resources=_resources(tmp_path),
                   run_config={"ops": {"tryon_pairs": {"config": {"height": 64, "train": 4, "test": 4}}}})
    result = _train(instance, tmp_path, "encoder_decoder", lr=1e30)  # an absurd rate blows up at once
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "non-finite loss" in failure.event_specific_data.error.message
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)  # exit 2: no retry
