"""Benchmark: scrape and download a 700-pin board of the embedded site, with latency per image.

One Selenium scrape of the board (headless Chromium, images off) gives the pins; then their
images are downloaded three ways, each into its own empty data root:

- ``fashion_pipeline`` downloader, 8 workers, no rate limit (what the hardware allows);
- the same with its default politeness limit (10 requests/s), as it runs against pinterest.com;
- a reference loop written the common way, one image at a time: for each pin, try the original
  URLs and then the sized copies with ``requests.get`` until one answers 200, write the bytes.

The site sleeps ``--latency`` seconds (default 75 ms) before every image response, standing in for
a CDN round trip. Images are rendered once before timing (the site caches them on disk), so the
numbers measure the scraper and downloader rather than the site's drawing code.

Run: ``.venv/bin/python -m bench.pinterest_scrape [--pins 700] [--latency 0.075]``
Writes ``bench/results/pinterest_scrape.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import requests

from fashion_pipeline.common.atomic import write_bytes, write_json, write_text
from fashion_pipeline.pinterest.download import DownloadSettings, Pin, download_pins
from fashion_pipeline.pinterest.scraper import ScrollSettings, scroll_and_collect, start_browser
from fashion_pipeline.pinterest.site import EmbeddedPinterestSite
from fashion_pipeline.pinterest.urls import image_candidates

RESULTS = Path(__file__).resolve().parent / "results"
BRAND = "Prada"


def reference_sequential_download(pins: list[Pin], out_dir: Path) -> int:
    """The one-image-at-a-time loop: no pool, no validation beyond the status code."""
    saved = 0
    for pin in pins:
        for url in image_candidates(pin.src, pin.srcset).all():
            response = requests.get(url, timeout=30)
            if response.status_code == 200:
                write_bytes(out_dir / f"{hashlib.sha256(response.content).hexdigest()}.img", response.content)
                saved += 1
                break
    return saved


def scrape(site: EmbeddedPinterestSite) -> tuple[list[Pin], float, int]:
    driver = start_browser()
    try:
        started = time.perf_counter()
        result = scroll_and_collect(driver, site.board_url(BRAND), ScrollSettings(scroll_pause_s=0.5, persistence=5))
        seconds = time.perf_counter() - started
    finally:
        driver.quit()
    if result.stopped_because != "end_of_board":
        raise SystemExit(f"scrape stopped early ({result.stopped_because}) after {len(result.pins)} pins")
    return result.pins, seconds, result.rounds


def prewarm(site: EmbeddedPinterestSite, pins: list[Pin], cache_root: Path) -> None:
    """Render every image once so timing measures transfer, not the site's drawing."""
    latency, site.latency_s = site.latency_s, 0.0
    try:
        download_pins(pins, "prewarm", cache_root, DownloadSettings(max_workers=4, requests_per_second=0).with_hosts("127.0.0.1"))
    finally:
        site.latency_s = latency


def timed_download(pins: list[Pin], root: Path, settings: DownloadSettings) -> dict:
    started = time.perf_counter()
    report = download_pins(pins, "bench", root, settings)
    seconds = time.perf_counter() - started
    kept = report.files_downloaded + report.files_already_present
    return {"seconds": round(seconds, 2), "images": kept, "failures": dict(report.failures)}


def run(pins_per_board: int, latency_s: float, workdir: Path) -> dict:
    site_root = workdir / "site"
    with EmbeddedPinterestSite(site_root, [BRAND], pins_per_board=pins_per_board, seed=0, latency_s=latency_s) as site:
        pins, scrape_seconds, rounds = scrape(site)
        prewarm(site, pins, workdir / "prewarm")
        concurrent = timed_download(pins, workdir / "concurrent", DownloadSettings(max_workers=8, requests_per_second=0).with_hosts("127.0.0.1"))
        polite = timed_download(pins, workdir / "polite", DownloadSettings(max_workers=8).with_hosts("127.0.0.1"))
        started = time.perf_counter()
        saved = reference_sequential_download(pins, workdir / "reference")
        reference = {"seconds": round(time.perf_counter() - started, 2), "images": saved}
    n = len(pins)

    def rates(entry: dict) -> dict:
        return {**entry, "pins_per_s": round(n / entry["seconds"], 2),
                "end_to_end_pins_per_s": round(n / (entry["seconds"] + scrape_seconds), 2)}

    return {
        "pins": n, "latency_s": latency_s, "scrape_seconds": round(scrape_seconds, 2), "scroll_rounds": rounds,
        "concurrent_8_workers": rates(concurrent), "polite_8_workers_10rps": rates(polite),
        "reference_sequential": rates(reference),
        "speedup_download": round(reference["seconds"] / concurrent["seconds"], 2),
        "speedup_end_to_end": round((reference["seconds"] + scrape_seconds) / (concurrent["seconds"] + scrape_seconds), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
    }


def markdown(result: dict) -> str:
    rows = [
        ("fashion_pipeline, 8 workers, no rate limit", result["concurrent_8_workers"]),
        ("fashion_pipeline, 8 workers, default 10 req/s limit", result["polite_8_workers_10rps"]),
        ("reference: sequential loop, one image at a time", result["reference_sequential"]),
    ]
    lines = [
        "## Pinterest scrape + download (`bench/pinterest_scrape.py`)",
        "",
        f"{result['pins']}-pin board on the embedded site, {result['latency_s'] * 1000:.0f} ms latency per image response, "
        f"{result['machine']}. Selenium scrape of the board: {result['scrape_seconds']} s "
        f"({result['scroll_rounds']} scroll rounds), shared by all rows.",
        "",
        "| downloader | download s | images | pins/s (download) | pins/s (scrape + download) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {r['seconds']} | {r['images']} | {r['pins_per_s']} | {r['end_to_end_pins_per_s']} |" for name, r in rows]
    lines += ["", f"Speed-up over the sequential loop: {result['speedup_download']}x on the download, "
                  f"{result['speedup_end_to_end']}x end to end. The thesis reports about 20 minutes per brand "
                  f"of 300-700 images (about 0.25-0.6 pins/s)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pins", type=int, default=700)
    parser.add_argument("--latency", type=float, default=0.075, help="seconds per image response")
    parser.add_argument("--workdir", help="keep the site's image cache here between runs (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_pinterest_") as temp:
        workdir = Path(args.workdir or temp)
        for stale in ("prewarm", "concurrent", "polite", "reference"):
            _remove_tree(workdir / stale)
        result = run(args.pins, args.latency, workdir)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "pinterest_scrape.json", result, indent=2)
    write_text(RESULTS / "pinterest_scrape.md", markdown(result))
    print(markdown(result))
    print(json.dumps(result, indent=2))
    return 0


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
