"""The downloader against the embedded site with faults on: nothing corrupt or partial lands,
every failure is counted by its reason, a killed run resumes without duplicates, reruns add nothing.

Pins are built from the site's catalog (what the scraper would collect), so no browser is needed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.pinterest.download import DownloadSettings, Fetcher, Pin, download_pins
from fashion_pipeline.pinterest.site import EmbeddedPinterestSite, FaultConfig, SiteMix
from fashion_pipeline.pinterest.site.faults import FaultPlanner

BRAND, SLUG = "Prada", "prada"
# More missing originals and non-jpg originals than the default mix, so 40 pins exercise every fallback.
MIX = SiteMix(missing_original_rate=0.15, png_rate=0.15, webp_rate=0.1)
# The embedded site is on the loopback address: allowed as the embedded mode allows it.
FAST = DownloadSettings(max_workers=4, requests_per_second=0, max_attempts=3, backoff_base_s=0.01, timeout_s=2.0,
                        flush_every=5).with_hosts("127.0.0.1")
# What the downloader must call each persistent fault of the URL it finally fetches.
EXPECTED_REASON = {"truncated": "truncated", "garbage": "corrupt", "html": "not_an_image",
                   "html_disguised": "not_an_image", "slow": "timeout"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    with EmbeddedPinterestSite(root, [BRAND, "Chanel"], pins_per_board=40, seed=3, mix=MIX) as running:
        yield running


def board_pins(site, named_original: bool = True) -> list[Pin]:
    """The pins as the scraper reads them: the srcset names the original (4x), as a real board page's
    does; ``named_original=False`` drops that entry, as an older page would, so the downloader guesses."""
    pins = []
    for pin in site.catalog.board_for_brand(BRAND).pins:
        sizes = {name: site.base_url + pin.image.path(name) for name in ("236x", "474x", "736x", "originals")}
        srcset = f"{sizes['236x']} 1x, {sizes['474x']} 2x, {sizes['736x']} 3x"
        if named_original:
            srcset += f", {sizes['originals']} 4x"
        pins.append(Pin(pin.pin_id, site.pin_url(pin.pin_id), sizes["236x"], srcset, "video" if pin.image.is_video else "image"))
    return pins


def final_path(site, pin_id: str) -> str:
    """The URL path the downloader ends on: the original when there is one, else the 736x copy."""
    image = site.catalog.pin(pin_id).image
    return image.path("originals" if image.has_original else "736x")


def expected_failures(site, config: FaultConfig) -> Counter:
    expected = Counter()
    for pin in site.catalog.board_for_brand(BRAND).pins:
        kind = FaultPlanner._drawn_kind(config, final_path(site, pin.pin_id))
        if kind in EXPECTED_REASON:
            expected[EXPECTED_REASON[kind]] += 1
    return expected


def assert_store_is_clean(root: Path, slug: str = SLUG, interrupted: bool = False) -> pd.DataFrame:
    """Every final-named file decodes completely and is named by its hash; manifest agrees.

    After an interruption, files saved after the last manifest flush may not be listed yet;
    the rerun adopts them (same hash) instead of storing them twice.
    """
    images = root / "pinterest_images" / slug / "images"
    final_files = [p for p in images.iterdir() if not p.name.startswith(".")]
    for path in final_files:
        body = path.read_bytes()
        assert hashlib.sha256(body).hexdigest() == path.stem, path
        with Image.open(io.BytesIO(body)) as image:
            image.load()
    manifest = pd.read_parquet(root / "pinterest_images" / slug / "manifest.parquet")
    assert manifest["pin_id"].is_unique
    on_disk = {f"pinterest_images/{slug}/images/{p.name}" for p in final_files}
    if interrupted:
        assert set(manifest["file_path"]) <= on_disk
    else:
        assert set(manifest["file_path"]) == on_disk
    assert (manifest["file_path"].map(lambda rel: Path(rel).stem) == manifest["sha256"]).all()
    return manifest


@pytest.mark.slow
def test_faults_never_land_and_every_failure_is_counted_by_reason(site, tmp_path):
    config = FaultConfig(seed=11, error_500_rate=0.1, error_429_rate=0.1, retry_after_s=0, slow_rate=0.06,
                         slow_delay_s=2.5, truncated_rate=0.1, garbage_rate=0.1, html_as_image_rate=0.06,
                         html_disguised_rate=0.06)
    site.set_faults(config)
    try:
        report = download_pins(board_pins(site), SLUG, tmp_path, FAST)
        injected = site.stats()["faults_injected"]
    finally:
        site.set_faults(None)
    expected = expected_failures(site, config)
    assert sum(expected.values()) >= 5, "the fault mix should hit several pins"
    assert dict(report.failures) == dict(expected)
    manifest = assert_store_is_clean(tmp_path)
    # 500s and 429s were transient here: retried through, so those pins are in the manifest.
    assert len(manifest) == 40 - sum(expected.values())
    assert report.files_downloaded + report.files_already_present == len(manifest)
    assert injected.get("429", 0) > 0 and injected.get("500", 0) > 0


@pytest.mark.slow
def test_retries_exhausted_are_reported_as_such_and_honour_retry_after(site, tmp_path):
    config = FaultConfig(seed=5, error_500_rate=0.15, error_429_rate=0.15, retry_after_s=2, transient_attempts=99)
    site.set_faults(config)
    slept: list[float] = []
    settings = DownloadSettings(max_workers=4, requests_per_second=0, max_attempts=3, backoff_base_s=0.01).with_hosts("127.0.0.1")
    try:
        report = download_pins(board_pins(site), SLUG, tmp_path, settings, fetcher=Fetcher(settings, sleep=slept.append))
    finally:
        site.set_faults(None)
    kinds = Counter(FaultPlanner._drawn_kind(config, final_path(site, pin.pin_id)) for pin in board_pins(site))
    assert report.failures["http_5xx_exhausted"] == kinds["500"] > 0
    assert report.failures["http_429_exhausted"] == kinds["429"] > 0
    # Two waits per exhausted 429 pin, each exactly the server's Retry-After.
    assert slept.count(2.0) == 2 * kinds["429"]
    assert_store_is_clean(tmp_path)


@pytest.mark.slow  # first use of the site renders its images
@pytest.mark.parametrize("named_original", [True, False], ids=["srcset-names-original", "original-guessed"])
def test_missing_originals_and_wrong_extensions_fall_back(site, tmp_path, named_original):
    site.set_faults(None)
    pins = board_pins(site, named_original)
    before = len(site.request_log)
    report = download_pins(pins, SLUG, tmp_path, FAST)
    assert report.files_downloaded + report.files_already_present == 40 and not report.failures
    manifest = assert_store_is_clean(tmp_path).set_index("pin_id")
    for pin in pins:
        image = site.catalog.pin(pin.pin_id).image
        assert manifest.loc[pin.pin_id, "image_url"] == site.base_url + final_path(site, pin.pin_id)
        if image.has_original:
            assert (manifest.loc[pin.pin_id, ["width", "height"]].tolist()) == list(image.size)
    assert any(not site.catalog.pin(p.pin_id).image.has_original for p in pins), "no 403 fallback exercised"
    assert any(site.catalog.pin(p.pin_id).image.original_ext != "jpg" for p in pins), "no extension fallback exercised"
    assert set(manifest["original_from"]) == {"srcset" if named_original else "guessed"}
    original_404s = [path for _, path, status in list(site.request_log)[before:] if "/originals/" in path and status == 404]
    if named_original:
        assert original_404s == []  # the page named each original: no extension was guessed
    else:
        assert original_404s, "guessing should cost a 404 for each png/webp/gif original"

    rerun = download_pins(pins, SLUG, tmp_path, FAST)
    assert rerun.files_downloaded == 0 and rerun.pins_skipped == 40 and rerun.files_already_present == 40
    assert len(pd.read_parquet(tmp_path / "pinterest_images" / SLUG / "manifest.parquet")) == 40


def test_an_exception_midway_keeps_what_was_saved_and_a_rerun_completes(site, tmp_path):
    site.set_faults(None)
    pins = board_pins(site)

    def crash_after_seven(outcome, seen=[]):  # noqa: B006 - a counter across calls
        seen.append(outcome)
        if len(seen) == 7:
            raise KeyboardInterrupt("simulated Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        download_pins(pins, SLUG, tmp_path, DownloadSettings(max_workers=2, requests_per_second=0).with_hosts("127.0.0.1"),
                      on_outcome=crash_after_seven)
    partial = assert_store_is_clean(tmp_path, interrupted=True)
    assert 7 <= len(partial) < 40

    report = download_pins(pins, SLUG, tmp_path, FAST)
    assert report.pins_skipped == len(partial)
    assert assert_store_is_clean(tmp_path)["pin_id"].nunique() == 40


@pytest.mark.slow
def test_a_killed_download_process_resumes_without_duplicates(tmp_path):
    root = tmp_path / "data"
    with EmbeddedPinterestSite(tmp_path / "site", [BRAND], pins_per_board=40, seed=3, latency_s=0.1, mix=MIX) as site:
        pins_file = tmp_path / "pins.json"
        pins_file.write_text(json.dumps([pin.__dict__ for pin in board_pins(site)]))
        command = [sys.executable, "-m", "fashion_pipeline.pinterest.download", "--pins", str(pins_file),
                   "--brand", SLUG, "--data-root", str(root), "--workers", "2", "--rate", "0", "--flush-every", "3",
                   "--image-host", "127.0.0.1"]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        manifest_path = root / "pinterest_images" / SLUG / "manifest.parquet"
        deadline = time.monotonic() + 120
        while not manifest_path.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, "the download finished before it could be killed"
        partial = assert_store_is_clean(root, interrupted=True)
        assert 0 < len(partial) < 40

        report = download_pins(board_pins(site), SLUG, root, FAST)
    final = assert_store_is_clean(root)
    assert len(final) == 40 and report.pins_skipped == len(partial)
    assert report.files_downloaded + report.files_already_present == 40


# ---- GIF originals and video pins -----------------------------------------------------------

@pytest.mark.slow
def test_a_gif_original_is_stored_as_its_first_frame_and_video_pins_are_skipped(tmp_path):
    mix = SiteMix(gif_rate=0.3, video_rate=0.15)
    with EmbeddedPinterestSite(tmp_path / "site", [BRAND], pins_per_board=30, seed=4, mix=mix) as site:
        pins = board_pins(site)
        catalog = {p.pin_id: p.image for p in site.catalog.board_for_brand(BRAND).pins}
        for image in catalog.values():  # drawn now, so FAST's 2 s timeout measures the download only
            site.store.ensure(image, "originals")
        report = download_pins(pins, SLUG, tmp_path / "data", FAST)
        gif_pins = [pid for pid, image in catalog.items() if image.original_ext == "gif" and image.has_original and not image.is_video]
        video_pins = [pid for pid, image in catalog.items() if image.is_video]
        assert gif_pins and video_pins
        assert report.failures == Counter({"video_pin": len(video_pins)})
        manifest = assert_store_is_clean(tmp_path / "data").set_index("pin_id")
        assert not set(video_pins) & set(manifest.index)
        for pid in gif_pins:
            row = manifest.loc[pid]
            assert (row["source_format"], row["stored_as"]) == ("gif", "gif_first_frame")
            stored = Image.open(tmp_path / "data" / row["file_path"])
            assert stored.format == "PNG" and stored.size == catalog[pid].size
            with Image.open(io.BytesIO(site.store.read(catalog[pid], "originals"))) as original:
                first = original.convert("RGB")  # frame 0
            assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(first))
        others = manifest.drop(index=gif_pins)
        assert set(others["stored_as"]) == {"as_fetched"}
