"""Download the scraped pins' images: politely, concurrently, validated, incrementally.

- A thread pool bounds concurrency; a global token bucket bounds the request rate.
- 429 (honouring ``Retry-After``), 5xx, timeouts and dropped connections are retried with
  exponential backoff and jitter; 403/404 move on to the next candidate URL (see ``urls.py``).
- Every body is validated before it is kept: ``image/*`` content type, a size cap, Pillow's
  decompression-bomb guard plus our own pixel cap, and a full decode so truncated files fail.
- Only images from image hosts: http(s) URLs whose host is on the allowlist (pinimg.com by default,
  plus the embedded site's loopback address in embedded mode); redirects are followed by hand, and
  only while they stay on the allowlist. Anything else is refused, and counted by its reason.
- Files are written atomically as ``<sha256>.<ext of the decoded format>``: no part of a URL ever
  becomes a path, and the same picture pinned twice is stored once. A GIF original is stored as
  its first frame, losslessly as PNG (``stored_as = gif_first_frame``; README: why). Video pins
  are skipped (reason ``video_pin``): a cover still is not the pin's content.
- The brand's Parquet manifest is merged with the previous one and flushed every few files, so a
  killed run keeps what it already saved and a rerun downloads only what is missing.

    python -m fashion_pipeline.pinterest.download --pins pins.json --brand prada --data-root data
"""
from __future__ import annotations

import argparse
import email.utils
import hashlib
import io
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import pandas as pd
import requests
from PIL import Image, UnidentifiedImageError

from fashion_pipeline.common.atomic import write_bytes, write_parquet
from fashion_pipeline.common.images import upright_dimensions
from fashion_pipeline.pinterest.urls import image_candidates

ASSET_NAME = "pinterest_images"
MANIFEST_COLUMNS = ["pin_id", "page_url", "image_url", "file_path", "sha256", "width", "height", "brand", "scraped_at",
                    "original_from", "source_format", "stored_as"]
# Columns added after the first manifests were written, and the value an older row gets.
LATER_COLUMNS = {"original_from": "", "source_format": "", "stored_as": "as_fetched"}
FAILURE_REASONS = (
    "http_403", "http_404", "http_4xx", "http_429_exhausted", "http_5xx_exhausted", "timeout",
    "connection_error", "not_an_image", "unsupported_format", "truncated", "corrupt", "too_large",
    "decompression_bomb", "no_image_url", "video_pin",
    "refused_scheme", "refused_host", "refused_redirect", "too_many_redirects",
)
DEFAULT_IMAGE_HOSTS = ("pinimg.com",)  # i.pinimg.com and every other pinimg host
MAX_REDIRECTS = 5
EXTENSION_BY_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
# Leading bytes of the formats we keep: a body that starts like an image but does not decode is corrupt.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
STALE_TEMP_AGE_S = 600  # temp files of a killed run; younger ones may belong to a run in progress


@dataclass(frozen=True)
class Pin:
    """One pin as the scraper saw it; ``src``/``srcset`` are the ``<img>`` attributes."""

    pin_id: str
    page_url: str
    src: str | None
    srcset: str | None = None
    media: str = "image"  # "video" when the pin holds a <video>: its <img> is only the cover


@dataclass(frozen=True)
class DownloadSettings:
    max_workers: int = 8
    requests_per_second: float = 10.0  # global, across workers; <= 0 disables the limit
    burst: int = 8
    max_attempts: int = 5  # per URL, for 429 / 5xx / timeout / dropped connection
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 20.0  # connect / between bytes, and the whole body
    max_bytes: int = 30 * 1024 * 1024
    max_pixels: int = 60_000_000
    flush_every: int = 25  # manifest rows between flushes
    flush_interval_s: float = 10.0
    user_agent: str = "fashion-pipeline/0.1 (+research scrape; polite rate limit)"
    # Hosts images may come from: a name allows itself and its subdomains ("pinimg.com" allows
    # "i.pinimg.com"); an IP address allows only itself. Redirects must stay within them too.
    allowed_hosts: tuple[str, ...] = DEFAULT_IMAGE_HOSTS

    def with_hosts(self, *hosts: str) -> "DownloadSettings":
        """These settings with more allowed hosts (the embedded site's address, say)."""
        from dataclasses import replace

        return replace(self, allowed_hosts=tuple(dict.fromkeys([*self.allowed_hosts, *hosts])))


class DownloadFailed(Exception):
    """A pin's image could not be kept; ``reason`` is one of ``FAILURE_REASONS``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    extension: str
    width: int
    height: int


@dataclass
class PinOutcome:
    pin: Pin
    row: dict | None = None  # manifest row when the image was kept
    reason: str | None = None  # failure reason otherwise
    detail: str = ""
    already_present: bool = False  # same bytes were already on disk


@dataclass
class DownloadReport:
    pins_found: int = 0
    pins_skipped: int = 0  # already in the manifest with their file on disk
    files_downloaded: int = 0  # new files written
    files_already_present: int = 0  # pins_skipped + new pins whose bytes were already stored
    failures: Counter = field(default_factory=Counter)
    new_files: list[str] = field(default_factory=list)  # relative to the data root
    manifest_rows: int = 0
    manifest_path: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = dict(self.failures)
        return out


class TokenBucket:
    """Global politeness limit: at most ``rate`` acquisitions per second after a ``capacity`` burst."""

    def __init__(self, rate: float, capacity: int = 1, clock=time.monotonic, sleep=time.sleep):
        self.rate, self.capacity = rate, max(1, capacity)
        self._tokens = float(self.capacity)
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


def backoff_delay(attempt: int, settings: DownloadSettings, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so workers spread out."""
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Fetched:
    url: str
    status: int
    content_type: str = ""
    body: bytes = b""


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == name or host.endswith("." + name) for name in (a.lower().rstrip(".") for a in allowed))


def check_image_url(url: str, allowed_hosts: Iterable[str]) -> None:
    """Raise ``refused_scheme`` / ``refused_host`` unless ``url`` is http(s) on an allowed host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadFailed("refused_scheme", f"{url}: only http and https image URLs are fetched")
    if not parts.hostname or not host_allowed(parts.hostname, allowed_hosts):
        raise DownloadFailed("refused_host", f"{url}: host {parts.hostname!r} is not an image host "
                                             f"(allowed: {', '.join(allowed_hosts)})")


class Fetcher:
    """GET with retries, the global rate limit, and a size cap; one HTTP session per thread."""

    def __init__(self, settings: DownloadSettings, bucket: TokenBucket | None = None, sleep=time.sleep, seed: int | None = None):
        self.settings = settings
        self.bucket = bucket or TokenBucket(settings.requests_per_second, settings.burst)
        self._sleep = sleep
        self._local = threading.local()
        self._rng = random.Random(seed)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.headers["User-Agent"] = self.settings.user_agent
            self._local.session = session
        return self._local.session

    def _read_capped(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise DownloadFailed("too_large", f"{response.url} declares {declared} bytes")
        started, chunks, total = time.monotonic(), [], 0
        for chunk in response.iter_content(64 * 1024):
            total += len(chunk)
            if total > self.settings.max_bytes:
                raise DownloadFailed("too_large", f"{response.url} exceeds {self.settings.max_bytes} bytes")
            if time.monotonic() - started > self.settings.timeout_s:
                raise requests.exceptions.Timeout(f"{response.url}: body took over {self.settings.timeout_s}s")
            chunks.append(chunk)
        return b"".join(chunks)

    def _open(self, url: str) -> requests.Response:
        """GET ``url``, following redirects by hand and only while they stay on the allowlist."""
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._session().get(current, timeout=self.settings.timeout_s, stream=True, allow_redirects=False)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                return response
            response.close()
            target = urljoin(current, location)
            try:
                check_image_url(target, self.settings.allowed_hosts)
            except DownloadFailed as refused:
                raise DownloadFailed("refused_redirect", f"{current} redirects off the image hosts: {refused}") from None
            current = target
        raise DownloadFailed("too_many_redirects", f"{url}: more than {MAX_REDIRECTS} redirects")

    def get(self, url: str) -> Fetched:
        """Final answer for ``url``: 200 with its body, or a 4xx status; raises after retries.

        Refused before any request when ``url`` is not http(s) on an allowed host."""
        check_image_url(url, self.settings.allowed_hosts)
        last_reason, last_detail = "timeout", url
        retry_after = None
        for attempt in range(self.settings.max_attempts):
            if attempt:
                self._sleep(retry_after if retry_after is not None else backoff_delay(attempt - 1, self.settings, self._rng))
            retry_after = None
            self.bucket.acquire()
            try:
                with self._open(url) as response:
                    status = response.status_code
                    if status == 200:
                        return Fetched(response.url, 200, response.headers.get("Content-Type", ""), self._read_capped(response))
                    if status == 429:
                        last_reason, last_detail = "http_429_exhausted", url
                        wait = retry_after_seconds(response.headers.get("Retry-After"))
                        retry_after = min(wait, self.settings.backoff_max_s) if wait is not None else None
                        continue
                    if status >= 500:
                        last_reason, last_detail = "http_5xx_exhausted", f"{url} answered {status}"
                        continue
                    return Fetched(url, status)
            except requests.exceptions.Timeout:
                last_reason, last_detail = "timeout", url
            except requests.exceptions.ChunkedEncodingError:
                # The connection closed before Content-Length bytes arrived: a cut transfer.
                last_reason, last_detail = "truncated", f"{url}: connection closed mid-body"
            except requests.exceptions.ConnectionError as error:
                last_reason, last_detail = "connection_error", f"{url}: {error}"
        raise DownloadFailed(last_reason, f"{last_detail} (after {self.settings.max_attempts} attempts)")


def validate_image(body: bytes, content_type: str, url: str, settings: DownloadSettings) -> ImageInfo:
    """Decode fully or reject with a reason; never trusts the URL or the header alone."""
    if content_type.lower().startswith("video/"):
        raise DownloadFailed("video_pin", f"{url} is a video ({content_type})")
    if not content_type.lower().startswith("image/"):
        raise DownloadFailed("not_an_image", f"{url} has Content-Type {content_type or 'missing'!r}")
    if len(body) > settings.max_bytes:
        raise DownloadFailed("too_large", f"{url} is {len(body)} bytes")
    # Our pixel cap is checked from the header before any decoding; Pillow's own guard
    # (Image.MAX_IMAGE_PIXELS, an error at twice that) stays on as the backstop. No
    # warnings.catch_warnings() here: it swaps process-global state and this runs in threads.
    try:
        with Image.open(io.BytesIO(body)) as probe:
            image_format, (width, height) = probe.format, upright_dimensions(probe)  # as displayed (EXIF)
            if width * height > settings.max_pixels:
                raise DownloadFailed("decompression_bomb", f"{url} claims {width}x{height} pixels")
        # verify() on an image object of its own: reading the EXIF above can consume the file, and
        # Pillow then refuses verify() ("must be called directly after open", a RuntimeError).
        with Image.open(io.BytesIO(body)) as checked:
            checked.verify()
        with Image.open(io.BytesIO(body)) as image:
            image.load()  # verify() does not decode pixel data; load() catches truncation
    except Image.DecompressionBombError as error:
        raise DownloadFailed("decompression_bomb", f"{url}: {error}") from error
    except UnidentifiedImageError as error:
        reason = "corrupt" if _looks_like_image(body) else "not_an_image"
        raise DownloadFailed(reason, f"{url}: Pillow cannot identify it") from error
    except (OSError, SyntaxError, ValueError) as error:
        reason = "truncated" if "truncated" in str(error).lower() else "corrupt"
        raise DownloadFailed(reason, f"{url}: {error}") from error
    extension = EXTENSION_BY_FORMAT.get(image_format or "")
    if extension is None:
        raise DownloadFailed("unsupported_format", f"{url} is {image_format}")
    return ImageInfo(extension, width, height)


def _looks_like_image(body: bytes) -> bool:
    return body.startswith(IMAGE_SIGNATURES) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def fetch_best_image(pin: Pin, fetcher: Fetcher) -> tuple[Fetched, str]:
    """Try the original (the one the page names, else guessed by extension), then the sized
    copies; see ``urls.py`` for the order. Returns what answered and where the original came from."""
    candidates = image_candidates(pin.src, pin.srcset)
    if not candidates.all():
        raise DownloadFailed("no_image_url", f"pin {pin.pin_id} ({pin.page_url}) has no image URL")
    last_status = 404
    for url in candidates.originals:
        fetched = fetcher.get(url)
        if fetched.status == 200:
            return fetched, candidates.original_from
        last_status = fetched.status
        if fetched.status != 404:
            break  # 403: no original at all, another extension will not help
    for url in candidates.sized:
        fetched = fetcher.get(url)
        if fetched.status == 200:
            return fetched, candidates.original_from
        last_status = fetched.status
    reason = {403: "http_403", 404: "http_404"}.get(last_status, "http_4xx")
    raise DownloadFailed(reason, f"pin {pin.pin_id}: no candidate answered 200 (last {last_status})")


class BrandStore:
    """The brand's folder: content-addressed images plus the manifest."""

    def __init__(self, data_root: str | Path, brand: str):
        self.data_root = Path(data_root)
        self.brand = brand
        self.folder = self.data_root / ASSET_NAME / brand
        self.images = self.folder / "images"
        self.manifest_path = self.folder / "manifest.parquet"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.data_root).as_posix()

    def save(self, body: bytes, info: ImageInfo) -> tuple[str, str, bool]:
        """Store ``body`` under its hash; returns (sha256, relative path, already_present)."""
        digest = hashlib.sha256(body).hexdigest()
        path = self.images / f"{digest}.{info.extension}"
        if path.exists():
            return digest, self.relative(path), True
        write_bytes(path, body)
        return digest, self.relative(path), False

    def remove_stale_temp_files(self) -> int:
        """Delete ``atomic_open`` leftovers of a killed run (never visible under a final name)."""
        removed = 0
        for temp in self.images.glob(".*.part") if self.images.exists() else []:
            if time.time() - temp.stat().st_mtime > STALE_TEMP_AGE_S:
                temp.unlink(missing_ok=True)
                removed += 1
        return removed

    def load_manifest(self) -> pd.DataFrame:
        if not self.manifest_path.exists():
            return pd.DataFrame(columns=MANIFEST_COLUMNS)
        try:
            return pd.read_parquet(self.manifest_path)
        except Exception as error:  # a manifest we cannot read must not be silently replaced
            raise RuntimeError(f"{self.manifest_path}: unreadable manifest ({error}); move it away to rescrape") from error

    def write_manifest(self, frame: pd.DataFrame) -> None:
        write_parquet(self.manifest_path, frame[MANIFEST_COLUMNS].reset_index(drop=True))


class ManifestBuffer:
    """Previous manifest + new rows, keyed by pin id, flushed atomically every few rows."""

    def __init__(self, store: BrandStore, settings: DownloadSettings):
        self.store, self.settings = store, settings
        # Rows whose file vanished are dropped so the pin is downloaded again.
        self.rows: dict[str, dict] = {
            str(row["pin_id"]): row
            for row in store.load_manifest().to_dict("records")
            if (store.data_root / row["file_path"]).exists()
        }
        self._unflushed, self._flushed_at = 0, time.monotonic()

    def known(self, pin_id: str) -> bool:
        return pin_id in self.rows

    def add(self, row: dict) -> None:
        self.rows[row["pin_id"]] = row
        self._unflushed += 1
        overdue = time.monotonic() - self._flushed_at > self.settings.flush_interval_s
        if self._unflushed >= self.settings.flush_every or overdue:
            self.flush()

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(list(self.rows.values()), columns=MANIFEST_COLUMNS)
        frame = frame.fillna(LATER_COLUMNS)  # rows of a manifest written before these columns existed
        return frame.astype({"width": "int64", "height": "int64"})

    def flush(self) -> None:
        if self.rows:
            self.store.write_manifest(self.frame())
        self._unflushed, self._flushed_at = 0, time.monotonic()


def gif_first_frame(body: bytes) -> tuple[bytes, ImageInfo]:
    """The first frame of a GIF as a lossless PNG: what Pinterest's own still renditions show."""
    with Image.open(io.BytesIO(body)) as image:
        image.seek(0)
        frame = image.convert("RGB")
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue(), ImageInfo("png", *frame.size)


def download_one(pin: Pin, brand: str, store: BrandStore, fetcher: Fetcher) -> PinOutcome:
    """Runs in a worker thread: fetch, validate, store. Failures come back as a reason."""
    if pin.media == "video":
        return PinOutcome(pin, reason="video_pin", detail=f"pin {pin.pin_id} is a video pin; skipped")
    try:
        fetched, original_from = fetch_best_image(pin, fetcher)
        info = validate_image(fetched.body, fetched.content_type, fetched.url, fetcher.settings)
        body, stored_info, stored_as = fetched.body, info, "as_fetched"
        if info.extension == "gif":
            body, stored_info = gif_first_frame(fetched.body)
            stored_as = "gif_first_frame"
        digest, relative, already = store.save(body, stored_info)
    except DownloadFailed as failure:
        return PinOutcome(pin, reason=failure.reason, detail=str(failure))
    row = {
        "pin_id": pin.pin_id, "page_url": pin.page_url, "image_url": fetched.url, "file_path": relative,
        "sha256": digest, "width": stored_info.width, "height": stored_info.height, "brand": brand,
        "scraped_at": datetime.now(timezone.utc), "original_from": original_from,
        "source_format": info.extension, "stored_as": stored_as,
    }
    return PinOutcome(pin, row=row, already_present=already)


def download_pins(
    pins: Iterable[Pin],
    brand: str,
    data_root: str | Path,
    settings: DownloadSettings = DownloadSettings(),
    on_outcome: Callable[[PinOutcome], None] | None = None,
    fetcher: Fetcher | None = None,
) -> DownloadReport:
    """Download every pin not yet in ``brand``'s manifest; returns counts and the new files.

    ``on_outcome`` runs in the calling thread after each pin (progress logging; tests use it to
    kill a run midway). Whatever happens, the manifest holds every image saved so far.
    """
    started = time.monotonic()
    pins = list({pin.pin_id: pin for pin in pins}.values())  # a pin seen twice while scrolling
    store = BrandStore(data_root, brand)
    store.remove_stale_temp_files()
    buffer = ManifestBuffer(store, settings)
    fetcher = fetcher or Fetcher(settings)
    report = DownloadReport(pins_found=len(pins), manifest_path=store.relative(store.manifest_path))
    pending = [pin for pin in pins if not buffer.known(pin.pin_id)]
    report.pins_skipped = len(pins) - len(pending)
    report.files_already_present = report.pins_skipped
    executor = ThreadPoolExecutor(max_workers=max(1, settings.max_workers), thread_name_prefix=f"dl-{brand}")
    try:
        futures = [executor.submit(download_one, pin, brand, store, fetcher) for pin in pending]
        for future in as_completed(futures):
            outcome = future.result()
            _record(outcome, report, buffer)
            if on_outcome:
                on_outcome(outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        buffer.flush()
        report.manifest_rows = len(buffer.rows)
        report.duration_s = time.monotonic() - started
    return report


def _record(outcome: PinOutcome, report: DownloadReport, buffer: ManifestBuffer) -> None:
    if outcome.row is None:
        report.failures[outcome.reason] += 1
        return
    buffer.add(outcome.row)
    if outcome.already_present:
        report.files_already_present += 1
    else:
        report.files_downloaded += 1
        report.new_files.append(outcome.row["file_path"])


def read_pins_json(path: str | Path) -> list[Pin]:
    """Pins as written by ``scraper.py --out``: a JSON list of {pin_id, page_url, src, srcset}."""
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from error
    pins = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not record.get("pin_id"):
            raise ValueError(f"{path}: entry #{index} has no pin_id: {record!r}")
        pins.append(Pin(str(record["pin_id"]), record.get("page_url", ""), record.get("src"), record.get("srcset"),
                        record.get("media", "image")))
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download the images of scraped pins into a brand folder.")
    parser.add_argument("--pins", required=True, help="JSON list of pins (scraper.py --out)")
    parser.add_argument("--brand", required=True, help="brand slug (folder and manifest `brand` column)")
    parser.add_argument("--data-root", required=True)
    defaults = DownloadSettings()
    parser.add_argument("--workers", type=int, default=defaults.max_workers)
    parser.add_argument("--rate", type=float, default=defaults.requests_per_second, help="requests/s, all workers")
    parser.add_argument("--max-attempts", type=int, default=defaults.max_attempts)
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s)
    parser.add_argument("--flush-every", type=int, default=defaults.flush_every)
    parser.add_argument("--image-host", action="append", default=[], metavar="HOST",
                        help=f"allow images from HOST too (default: {', '.join(DEFAULT_IMAGE_HOSTS)}); repeatable")
    args = parser.parse_args(argv)
    settings = DownloadSettings(
        max_workers=args.workers, requests_per_second=args.rate, max_attempts=args.max_attempts,
        timeout_s=args.timeout, flush_every=args.flush_every,
    ).with_hosts(*args.image_host)
    report = download_pins(read_pins_json(args.pins), args.brand, args.data_root, settings)
    summary = report.as_dict()
    summary.pop("new_files")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
