"""How fast the embedded Pinterest site serves a demo-sized scrape, image drawing included.

Each run serves 20 brands x 25 pins the way the scraper and the browser ask for them: board
page, feed pages, then per pin its 236x thumbnail and its original (trying .jpg, .png, .webp,
falling back to 736x on 403), four client threads. It is timed three ways in the same process:

- ours, cold: the site's ``ImageStore`` (draw the original and the 236x thumbnail on the first
  request; larger renditions on demand, from a draft-mode JPEG decode);
- reference, cold: the straightforward store (on the first request draw the original and make
  every rendition from the full-size decoded image);
- ours, warm: the same site again, everything served from the on-disk cache.

Run: ``.venv/bin/python -m bench.pinterest_site`` -> bench/results/pinterest_site.{json,md}
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from fashion_pipeline.common.atomic import write_bytes, write_text
from fashion_pipeline.pinterest.site import THESIS_BRANDS, EmbeddedPinterestSite
from fashion_pipeline.pinterest.site.catalog import END_BOOKMARK, RENDITIONS
from fashion_pipeline.pinterest.site.images import RENDITION_JPEG_QUALITY, ImageStore, encode

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 120.0  # the brief: 20 brands x ~25 pins served well under 2 minutes


class EagerImageStore(ImageStore):
    """Reference: every size made on the first request, each resized from the full decoded original."""

    def ensure(self, spec, size_name):
        path = self.file_path(spec, size_name)
        if path.exists():
            return path
        with self._lock_for(spec.hex):
            original_path = self.file_path(spec, "originals")
            if not original_path.exists():
                self._make_original(spec, original_path)
                full = Image.open(original_path).convert("RGB")
                for name in RENDITIONS:
                    small = full.resize(spec.rendition_size(name), Image.Resampling.LANCZOS)
                    write_bytes(self.file_path(spec, name), encode(small, "jpg", RENDITION_JPEG_QUALITY))
        return path


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _board_thumbnails(site: EmbeddedPinterestSite, brand: str) -> list[str]:
    with urllib.request.urlopen(site.board_url(brand), timeout=60) as response:
        html = response.read().decode()
    thumbnails = re.findall(r'src="(http[^"]+/236x/[^"]+)"', html)
    config = json.loads(re.search(r'id="board-config">(.*?)</script>', html).group(1))
    bookmark = config["bookmark"]
    while bookmark != END_BOOKMARK:
        url = f"{site.base_url}/resource/BoardFeedResource/get/?board={config['board']}&bookmark={bookmark}"
        with urllib.request.urlopen(url, timeout=60) as response:
            page = json.load(response)["resource_response"]
        thumbnails += [pin["images"]["236x"]["url"] for pin in page["data"]]
        bookmark = page["bookmark"]
    return thumbnails


def _fetch_pin(thumbnail: str) -> None:
    _get(thumbnail)
    stem = thumbnail.replace("/236x/", "/originals/").rsplit(".", 1)[0]
    for ext in ("jpg", "png", "webp"):
        status = _get(f"{stem}.{ext}")
        if status == 200:
            return
        if status == 403:
            break
    _get(thumbnail.replace("/236x/", "/736x/"))


def serve_scrape(site: EmbeddedPinterestSite, brands, workers: int) -> tuple[float, int]:
    started = time.perf_counter()
    pins = 0
    with ThreadPoolExecutor(workers) as pool:
        for brand in brands:
            thumbnails = _board_thumbnails(site, brand)
            list(pool.map(_fetch_pin, thumbnails))
            pins += len(thumbnails)
    return time.perf_counter() - started, pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pins", type=int, default=25, help="pins per board")
    parser.add_argument("--workers", type=int, default=4, help="client threads")
    args = parser.parse_args(argv)
    brands = list(THESIS_BRANDS)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-site-") as scratch:
        site = EmbeddedPinterestSite(Path(scratch) / "ours", brands, args.pins)
        with site:
            ours_s, pins = serve_scrape(site, brands, args.workers)
            print(f"ours, cold:      {pins} pins in {ours_s:.1f} s ({pins / ours_s:.1f} pins/s)")
            warm_s, _ = serve_scrape(site, brands, args.workers)
            print(f"ours, warm:      {pins} pins in {warm_s:.1f} s ({pins / warm_s:.1f} pins/s)")
            drawn, ours_files = site.store.rendered, sum(1 for _ in site.store.root.rglob("*.*"))
        reference = EmbeddedPinterestSite(Path(scratch) / "reference", brands, args.pins)
        reference.store = EagerImageStore(reference.root_dir, reference.catalog)
        with reference:
            ref_s, _ = serve_scrape(reference, brands, args.workers)
            ref_files = sum(1 for _ in reference.store.root.rglob("*.*"))
        print(f"reference, cold: {pins} pins in {ref_s:.1f} s ({pins / ref_s:.1f} pins/s)")
        print(f"speed-up (reference / ours, cold): {ref_s / ours_s:.2f}x")
    result = {
        "benchmark": "pinterest_site", "brands": len(brands), "pins_per_board": args.pins, "pins": pins,
        "client_threads": args.workers, "seconds_cold": round(ours_s, 2), "seconds_warm": round(warm_s, 2),
        "reference_seconds_cold": round(ref_s, 2), "speedup": round(ref_s / ours_s, 2),
        "pins_per_second_cold": round(pins / ours_s, 2), "pins_per_second_warm": round(pins / warm_s, 2),
        "images_drawn": drawn, "files_written": ours_files, "reference_files_written": ref_files,
        "target_seconds": TARGET_SECONDS, "meets_target": ours_s < TARGET_SECONDS,
        "draw_scale": site.store.draw_scale, "cpu_count": os.cpu_count(), "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "pinterest_site.json", json.dumps(result, indent=2) + "\n")
    write_text(RESULTS / "pinterest_site.md", _markdown(result))
    print(f"results in {RESULTS / 'pinterest_site.json'}")
    return 0


def _markdown(r: dict) -> str:
    return "\n".join([
        "## Embedded Pinterest site serving a demo scrape (`bench/pinterest_site.py`)",
        "",
        f"{r['brands']} brands x {r['pins_per_board']} pins = {r['pins']} pins; per pin the 236x thumbnail and the "
        f"original (extension fallback, 736x on 403); {r['client_threads']} client threads; {r['cpu_count']} CPU cores "
        f"(load average {r['load_average_before']} before, {r['load_average_after']} after: shared machine). "
        f"Both stores draw originals the same way (draw_scale {r['draw_scale']}); they differ in which files they make and how.",
        "",
        "| store | seconds | pins/s | files written |",
        "|---|---|---|---|",
        f"| ours, cold (original + 236x on first request, draft-decoded renditions on demand) | {r['seconds_cold']} | "
        f"{r['pins_per_second_cold']} | {r['files_written']} |",
        f"| reference, cold (every rendition on first request, from the full decode) | {r['reference_seconds_cold']} | "
        f"{round(r['pins'] / r['reference_seconds_cold'], 2)} | {r['reference_files_written']} |",
        f"| ours, warm (disk cache) | {r['seconds_warm']} | {r['pins_per_second_warm']} | - |",
        "",
        f"Speed-up {r['speedup']}x over the reference; target < {r['target_seconds']:.0f} s cold: "
        f"{'met' if r['meets_target'] else 'NOT met'}.",
    ]) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
