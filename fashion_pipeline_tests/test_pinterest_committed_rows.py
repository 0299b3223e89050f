"""Issue 19.1, 4th bullet: a brand's scrape is append-only, and what the dataset merges is the set of rows a
recorded scrape committed, never rows flushed by a scrape that did not finish.

One brand through Dagster on the embedded site: a recorded scrape of 6 pins, then a scrape of the whole board
that fails after 3 downloads (its rows flushed to the manifest, no materialization recorded), then a full one."""
from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from fashion_pipeline.common import lineage
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.dedup import dataset
from fashion_pipeline.dedup.assets import committed_rows
from fashion_pipeline.pinterest import assets as pinterest_assets
from fashion_pipeline_tests.test_pinterest_assets import CONFIG, checks_of, metadata_of

BRAND = "hermes"


def _scrape(tmp_path, instance, **config):
    from fashion_pipeline.common.resources import DataRoot

    run_config = {"ops": {"pinterest_images": {"config": {**CONFIG["ops"]["pinterest_images"]["config"], **config}}}}
    return dg.materialize([pinterest_assets.pinterest_images], partition_key=BRAND, instance=instance,
                          resources={"data_root": DataRoot(root=str(tmp_path)),
                                     "pinterest": pinterest_assets.PinterestScraper()},
                          run_config=run_config, raise_on_error=False)


def _files(root, frame: pd.DataFrame) -> dict:
    """Each row's file: (sha256, inode, mtime_ns): rewritten bytes, even equal ones, would show."""
    return {rel: (file_sha256(root / rel), (root / rel).stat().st_ino, (root / rel).stat().st_mtime_ns)
            for rel in frame["file_path"]}


def _merged(root, instance) -> pd.DataFrame:
    """The rows the dataset would merge for the brand's latest recorded scrape."""
    recorded = lineage.require_latest(instance, "pinterest_images", BRAND)
    part, problem = committed_rows(root, recorded)
    assert part is not None, problem
    return dataset.read_manifest(part)


@pytest.mark.slow
def test_a_scrape_that_fails_midway_loses_nothing_and_its_rows_are_not_merged(tmp_path, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    first = _scrape(tmp_path, instance, max_pins=6)
    assert first.success and metadata_of(first)["manifest_rows"] == 6
    manifest_path = tmp_path / "pinterest_images" / BRAND / "manifest.parquet"
    committed = pd.read_parquet(manifest_path)
    files = _files(tmp_path, committed)
    assert len(committed) == 6 and set(_merged(tmp_path, instance)["pin_id"]) == set(committed["pin_id"])

    # The next scrape of the whole board fails after 3 new images (a browser crash, a worker killed):
    # download_pins has flushed their rows into the brand's manifest, and no materialization is recorded.
    download, seen = pinterest_assets.download_pins, []

    def crash_after_three(outcome):
        seen.append(outcome)
        if len([o for o in seen if o.row is not None]) == 3:
            raise dg.Failure("browser lost (injected)", allow_retries=False)

    with monkeypatch.context() as patched:
        patched.setattr(pinterest_assets, "download_pins",
                        lambda *args, **kwargs: download(*args, **{**kwargs, "on_outcome": crash_after_three}))
        crashed = _scrape(tmp_path, instance)
    assert not crashed.success
    assert "browser lost" in crashed.get_step_failure_events()[0].event_specific_data.error.to_string()
    after_crash = pd.read_parquet(manifest_path)
    assert len(after_crash) >= 9  # the crashed scrape's rows were flushed: the case this test is about
    # append-only: the recorded rows come first, unchanged, and their files are the very same files
    pd.testing.assert_frame_equal(after_crash.head(6).reset_index(drop=True), committed)
    assert _files(tmp_path, committed) == files
    # what the dataset merges is what the recorded scrape committed, not the crashed scrape's rows
    recorded = lineage.require_latest(instance, "pinterest_images", BRAND)
    assert recorded.run_id == first.run_id
    merged = _merged(tmp_path, instance)
    assert list(merged["pin_id"]) == list(committed["pin_id"]) and list(merged["sha256"]) == list(committed["sha256"])

    # The next scrape finishes: it keeps every row collected so far (the recorded ones first, as they were),
    # adds the rest of the board without duplicates, and commits all of them.
    finished = _scrape(tmp_path, instance)
    assert finished.success and all(check.passed for check in checks_of(finished).values())
    final = pd.read_parquet(manifest_path)
    meta = metadata_of(finished)
    assert final["pin_id"].is_unique and len(final) == meta["manifest_rows"] == meta["pins_found"]
    pd.testing.assert_frame_equal(final.head(6).reset_index(drop=True), committed)
    pd.testing.assert_frame_equal(final.head(len(after_crash)).reset_index(drop=True), after_crash)
    assert _files(tmp_path, committed) == files
    assert meta["files_already_present"] >= len(after_crash)  # nothing collected was downloaded again
    assert set(_merged(tmp_path, instance)["pin_id"]) == set(final["pin_id"])
