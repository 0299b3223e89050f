"""Fault injection for the embedded site, deterministic per URL and attempt.

Each URL draws one number from ``(seed, path)``; the cumulative rates split [0, 1) into fault
kinds, so a URL has at most one fault and the same one on every run. 500 and 429 are transient:
they answer the first ``transient_attempts`` requests of a URL and then let it through. Slow,
truncated, garbage and HTML-as-image faults are persistent: a retry meets them again, so a
downloader must count them as failures instead of looping.

A request can also force a fault with ``?fault=<kind>`` (same attempt rules), and a board page
or feed can be made endless with ``?endless=1``.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, fields

from fashion_pipeline.pinterest.site.catalog import stable_int

TRANSIENT_KINDS = ("500", "429")
# Kinds that only make sense on an image response.
IMAGE_ONLY_KINDS = ("truncated", "garbage", "html", "html_disguised")
FAULT_KINDS = ("500", "429", "slow", "truncated", "garbage", "html", "html_disguised")


@dataclass(frozen=True)
class FaultConfig:
    seed: int = 0
    error_500_rate: float = 0.0
    error_429_rate: float = 0.0
    retry_after_s: int = 1  # the Retry-After header of a 429, in whole seconds as HTTP wants
    transient_attempts: int = 1  # a 500/429 URL fails this many times, then succeeds
    slow_rate: float = 0.0
    slow_delay_s: float = 2.0
    truncated_rate: float = 0.0  # Content-Length promised, connection closed halfway through the body
    garbage_rate: float = 0.0  # a valid image header followed by random bytes, full length
    html_as_image_rate: float = 0.0  # an image URL answers 200 text/html (a login wall, say)
    html_disguised_rate: float = 0.0  # an image URL answers 200 image/jpeg with an HTML body
    endless_feed: bool = False  # boards never end: no "More ideas" boundary ever appears
    include_pages: bool = False  # 500/429/slow also hit HTML pages and feed JSON, not only images

    def __post_init__(self):
        rates = [getattr(self, f"{name}_rate") for name in _RATE_NAMES.values()]
        if any(rate < 0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1, got {dict(zip(_RATE_NAMES, rates))}")
        if self.transient_attempts < 0 or self.retry_after_s < 0 or self.slow_delay_s < 0:
            raise ValueError("transient_attempts, retry_after_s and slow_delay_s must be >= 0")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# fault kind -> prefix of its ``<prefix>_rate`` field, in the order they split [0, 1).
_RATE_NAMES = {
    "500": "error_500", "429": "error_429", "slow": "slow", "truncated": "truncated",
    "garbage": "garbage", "html": "html_as_image", "html_disguised": "html_disguised",
}


class FaultPlanner:
    """Decides, thread-safely, which fault (if any) a request meets."""

    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self._attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.config = config or FaultConfig()

    def reset(self, config: FaultConfig | None) -> None:
        """New fault settings; attempt counters start again from zero."""
        with self._lock:
            self.config = config or FaultConfig()
            self._attempts.clear()
            self.injected.clear()

    def decide(self, path: str, is_image: bool, forced: str | None = None) -> str | None:
        """The fault kind for this attempt at ``path``, or None to answer normally."""
        if forced is not None and forced not in FAULT_KINDS:
            raise ValueError(f"unknown fault {forced!r}; choose from {', '.join(FAULT_KINDS)}")
        with self._lock:
            config = self.config
            self._attempts[path] += 1
            attempt = self._attempts[path]
            kind = forced or self._drawn_kind(config, path)
            if kind is None or (kind in IMAGE_ONLY_KINDS and not is_image):
                return None
            if not is_image and not config.include_pages and forced is None:
                return None
            if kind in TRANSIENT_KINDS and attempt > config.transient_attempts:
                return None
            self.injected[kind] += 1
            return kind

    @staticmethod
    def _drawn_kind(config: FaultConfig, path: str) -> str | None:
        draw = (stable_int("fault", config.seed, path) % 1_000_000) / 1_000_000
        edge = 0.0
        for kind, name in _RATE_NAMES.items():
            edge += getattr(config, f"{name}_rate")
            if draw < edge:
                return kind
        return None

    def attempts(self, path: str) -> int:
        with self._lock:
            return self._attempts[path]
