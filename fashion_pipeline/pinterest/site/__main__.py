"""Serve the embedded Pinterest-like site until Ctrl-C, to look at it in a browser.

    python -m fashion_pipeline.pinterest.site --port 8765 --brands Prada Chanel --pins 30
"""
from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from pathlib import Path

from fashion_pipeline.pinterest.site.catalog import THESIS_BRANDS
from fashion_pipeline.pinterest.site.faults import FaultConfig
from fashion_pipeline.pinterest.site.images import DEFAULT_DRAW_SCALE
from fashion_pipeline.pinterest.site.server import EmbeddedPinterestSite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fashion_pipeline.pinterest.site", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--brands", nargs="+", default=list(THESIS_BRANDS))
    parser.add_argument("--pins", type=int, default=30, help="pins per board")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=None, help="image cache folder (default: a temporary folder)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every image request")
    parser.add_argument("--draw-scale", type=float, default=DEFAULT_DRAW_SCALE,
                        help="draw originals at this fraction of their size, then upscale (1: full detail, slower)")
    faults = parser.add_argument_group("faults (rates are per URL, deterministic given --fault-seed)")
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument("--error-500-rate", type=float, default=0.0)
    faults.add_argument("--error-429-rate", type=float, default=0.0)
    faults.add_argument("--slow-rate", type=float, default=0.0)
    faults.add_argument("--truncated-rate", type=float, default=0.0)
    faults.add_argument("--garbage-rate", type=float, default=0.0)
    faults.add_argument("--html-as-image-rate", type=float, default=0.0)
    faults.add_argument("--html-disguised-rate", type=float, default=0.0)
    faults.add_argument("--endless-feed", action="store_true", help="boards never end")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # `kill` stops the server as cleanly as Ctrl-C


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    faults = FaultConfig(
        seed=args.fault_seed, error_500_rate=args.error_500_rate, error_429_rate=args.error_429_rate,
        slow_rate=args.slow_rate, truncated_rate=args.truncated_rate, garbage_rate=args.garbage_rate,
        html_as_image_rate=args.html_as_image_rate, html_disguised_rate=args.html_disguised_rate,
        endless_feed=args.endless_feed,
    )
    with tempfile.TemporaryDirectory(prefix="embedded-pinterest-") as scratch:
        site = EmbeddedPinterestSite(args.root or scratch, args.brands, args.pins, args.seed, faults,
                                     args.latency, host=args.host, port=args.port, draw_scale=args.draw_scale)
        with site:
            print(f"Embedded Pinterest at {site.base_url}/  (Ctrl-C to stop)")
            for brand in args.brands:
                print(f"  {brand:<20} {site.board_url(brand)}")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("\nstopping;", site.stats())


if __name__ == "__main__":
    main()
