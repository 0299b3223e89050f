"""Original-URL choice and the downloader's pure parts: validation, backoff, rate limit."""
from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from fashion_pipeline.pinterest.download import (
    DownloadFailed, DownloadSettings, TokenBucket, backoff_delay, retry_after_seconds, validate_image,
)
from fashion_pipeline.pinterest.urls import image_candidates, parse_srcset, to_original, with_extension

BASE = "https://i.pinimg.com"
SRCSET = f"{BASE}/236x/ab/cd/ef/abcdef.jpg 1x, {BASE}/474x/ab/cd/ef/abcdef.jpg 2x, {BASE}/736x/ab/cd/ef/abcdef.jpg 3x"


def test_originals_come_first_with_own_extension_then_the_others():
    candidates = image_candidates(f"{BASE}/236x/ab/cd/ef/abcdef.jpg", SRCSET)
    assert candidates.originals == [
        f"{BASE}/originals/ab/cd/ef/abcdef.jpg",
        f"{BASE}/originals/ab/cd/ef/abcdef.png",
        f"{BASE}/originals/ab/cd/ef/abcdef.webp",
        f"{BASE}/originals/ab/cd/ef/abcdef.gif",  # real boards have GIF originals
    ]


def test_sized_fallbacks_are_largest_first_and_unique():
    candidates = image_candidates(f"{BASE}/236x/ab/cd/ef/abcdef.jpg", SRCSET)
    assert candidates.sized == [f"{BASE}/{size}/ab/cd/ef/abcdef.jpg" for size in ("736x", "474x", "236x")]


def test_src_alone_still_yields_every_size():
    candidates = image_candidates(f"{BASE}/474x/00/11/22/0011.png")
    assert candidates.originals[0] == f"{BASE}/originals/00/11/22/0011.png"
    assert [u.split("/")[3] for u in candidates.sized] == ["736x", "474x", "236x"]


def test_url_without_size_folder_is_used_as_is():
    candidates = image_candidates("https://example.org/photo.jpg")
    assert candidates.originals == [] and candidates.sized == ["https://example.org/photo.jpg"]


def test_helpers():
    assert parse_srcset(" a.jpg 1x,b.jpg 2x ,, ") == ["a.jpg", "b.jpg"]
    assert to_original(f"{BASE}/736x/a/b.jpg") == f"{BASE}/originals/a/b.jpg"
    assert to_original("https://example.org/x.jpg") is None
    assert with_extension("https://h/x.jpeg?v=1", ".png") == "https://h/x.png?v=1"
    assert image_candidates(None, "").all() == []


def _encoded(fmt: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_extension_comes_from_the_decoded_format(fmt, ext):
    info = validate_image(_encoded(fmt), "image/jpeg", "u", DownloadSettings())
    assert (info.extension, info.width, info.height) == (ext, 40, 30)


@pytest.mark.parametrize(
    "body, content_type, settings, reason",
    [
        (b"<html>login</html>", "text/html", DownloadSettings(), "not_an_image"),
        (b"<html>login</html>", "image/jpeg", DownloadSettings(), "not_an_image"),
        (_encoded("PNG")[:-40], "image/png", DownloadSettings(), "truncated"),
        (_encoded("JPEG")[:200], "image/jpeg", DownloadSettings(), "truncated"),
        (_encoded("PNG"), "image/png", DownloadSettings(max_bytes=100), "too_large"),
        (_encoded("PNG", (4000, 4000)), "image/png", DownloadSettings(max_pixels=1_000_000), "decompression_bomb"),
    ],
)
def test_bad_bodies_are_rejected_with_their_reason(body, content_type, settings, reason):
    with pytest.raises(DownloadFailed) as raised:
        validate_image(body, content_type, "http://x/y.jpg", settings)
    assert raised.value.reason == reason


def test_backoff_grows_is_capped_and_jittered():
    settings = DownloadSettings(backoff_base_s=1.0, backoff_max_s=8.0)
    rng = random.Random(0)
    delays = [[backoff_delay(attempt, settings, rng) for _ in range(20)] for attempt in range(6)]
    for attempt, samples in enumerate(delays):
        ceiling = min(8.0, 2**attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in samples)
        assert len(set(samples)) > 1  # jitter


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_token_bucket_spaces_requests_after_the_burst():
    clock = {"t": 0.0}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["t"] += seconds

    bucket = TokenBucket(rate=4.0, capacity=2, clock=lambda: clock["t"], sleep=sleep)
    for _ in range(6):
        bucket.acquire()
    # 2 free (burst), then 4 more at 4/s: one second of simulated waiting.
    assert clock["t"] == pytest.approx(1.0)


def test_pillows_own_bomb_guard_stays_on_as_the_backstop(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DownloadFailed) as raised:
        validate_image(_encoded("PNG", (100, 100)), "image/png", "u", DownloadSettings(max_pixels=10**9))
    assert raised.value.reason == "decompression_bomb"


def test_an_image_signature_with_garbage_after_it_is_corrupt_not_html():
    body = _encoded("PNG")[:16] + bytes(range(256)) * 4
    with pytest.raises(DownloadFailed) as raised:
        validate_image(body, "image/png", "u", DownloadSettings())
    assert raised.value.reason == "corrupt"


def test_the_original_the_srcset_names_is_taken_as_is():
    # A real board page's srcset (see fixtures/real/pinterest/PROVENANCE.md): originals 4x, with the
    # original's own extension while the sized copies are .jpg.
    named = f"{SRCSET}, {BASE}/originals/ab/cd/ef/abcdef.gif 4x"
    candidates = image_candidates(f"{BASE}/236x/ab/cd/ef/abcdef.jpg", named)
    assert candidates.originals == [f"{BASE}/originals/ab/cd/ef/abcdef.gif"]
    assert candidates.original_from == "srcset"
    assert candidates.sized == [f"{BASE}/{size}/ab/cd/ef/abcdef.jpg" for size in ("736x", "474x", "236x")]
    assert image_candidates(f"{BASE}/236x/ab/cd/ef/abcdef.jpg", SRCSET).original_from == "guessed"
    assert image_candidates(None, "").original_from == "none"
