"""The soak's embedded site: the project's site, with boards that grow and faults aimed at one brand.

The project's ``FaultPlanner`` draws faults per URL across every brand; a soak needs them on one
brand for one tick, so the others stay healthy and each fault can be traced to the runs it hit:

- image faults (``500``, ``slow``, ``truncated``) on the downloads of one brand's new pins;
- board faults: a login wall after the first few pins, or a board that shows no pins at all;
- request hooks, so the harness can kill the browser when a brand's feed is scrolled, or a run
  worker when its downloads begin.

Nothing in the project's site changes: ``AimedFaults`` extends its planner and ``_SoakHandler`` its
request handler (swapped in after ``start``; the server reads its handler class per request).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Iterable

from fashion_pipeline.pinterest.site import pages
from fashion_pipeline.pinterest.site import server as site_server
from fashion_pipeline.pinterest.site.catalog import END_BOOKMARK
from fashion_pipeline.pinterest.site.faults import FaultConfig, FaultPlanner

IMAGE_FAULTS = ("500", "slow", "truncated")
BOARD_FAULTS = ("login_wall", "zero_pins")
LOGIN_WALL_PINS = 3  # pins shown before "Log in to see more": far fewer than half of a healthy scrape
LOGIN_WALL_HTML = ('<div class="login-wall" data-test-id="fullpage-signup"><h2>Log in to see more</h2>'
                   '<a href="/login/">Log in</a></div>')
_IMAGE_HEX = re.compile(r"/(?P<hex>[0-9a-f]{32})\.[a-z]+$")


@dataclass
class Aim:
    """One fault aimed at one brand while it is armed; ``hits`` counts the requests it answered."""

    kind: str
    brand: str
    hexes: frozenset = frozenset()  # image faults: the images of the brand's new pins
    hits: int = 0
    armed: bool = True


class AimedFaults(FaultPlanner):
    """The site's planner, plus image faults aimed at a set of images (downloads only, never thumbnails)."""

    def __init__(self, config: FaultConfig | None = None):
        super().__init__(config)
        self.aims: list[Aim] = []

    def decide(self, path: str, is_image: bool, forced: str | None = None) -> str | None:
        if is_image and forced is None and not path.startswith("/i/236x/"):
            match = _IMAGE_HEX.search(path)
            with self._lock:
                for aim in self.aims:
                    if aim.armed and aim.kind in IMAGE_FAULTS and match and match["hex"] in aim.hexes:
                        aim.hits += 1
                        self.injected[aim.kind] += 1
                        return aim.kind
        return super().decide(path, is_image, forced)


class _SoakHandler(site_server._Handler):
    def _serve_board(self, board, query) -> None:
        aim = self.site.board_aim(board.slug)
        if aim is None:
            return super()._serve_board(board, query)
        shown = board.pins[:LOGIN_WALL_PINS] if aim.kind == "login_wall" else []
        # The "-end-" bookmark: the page's script fetches no more of the board, as behind a wall.
        html = pages.board_page(board, shown, END_BOOKMARK, self.site.base_url, self.logged_in,
                                recommendations=self.site.catalog.recommendations_heading(board.slug))
        if aim.kind == "login_wall":
            html = html.replace("</main>", LOGIN_WALL_HTML + "</main>", 1)
        self.site.hit(aim)
        self._send_html(HTTPStatus.OK, html, "board_fault")

    def _serve_feed(self, path: str, query) -> None:
        self.site.notify("feed", query.get("board", [""])[0], "")
        super()._serve_feed(path, query)

    def _serve_image(self, path: str, match, query) -> None:
        if match["size"] != "236x":
            self.site.notify("image", self.site.brand_of_image(match["hex"]), match["hex"])
        super()._serve_image(path, match, query)


@dataclass
class Growth:
    """Boards show ``start`` pins at tick 0 and ``per_tick`` more at each later tick (up to ``capacity``)."""

    start: int = 20
    per_tick: int = 3
    ticks: int = 20

    @property
    def capacity(self) -> int:
        return self.start + self.per_tick * self.ticks


class SoakSite(site_server.EmbeddedPinterestSite):
    """The embedded site of the soak: one board per brand, growing per tick, faults aimed per brand."""

    def __init__(self, root_dir: Path, brands: Iterable[str], growth: Growth = Growth(), seed: int = 0,
                 slow_delay_s: float = 6.0, **kwargs):
        super().__init__(root_dir, brands, pins_per_board=growth.capacity, seed=seed, **kwargs)
        self.growth = growth
        self.faults = AimedFaults(FaultConfig(seed=seed, slow_delay_s=slow_delay_s))
        self._all_pins = {slug: list(board.pins) for slug, board in self.catalog.boards.items()}
        self._image_brand = {pin.image.hex: slug for slug, pins in self._all_pins.items() for pin in pins}
        self._board_aims: dict[str, Aim] = {}
        self._listeners: list[Callable[[str, str, str], None]] = []
        self._aims_lock = threading.Lock()
        self.tick = -1
        self.grow_to(0)

    def start(self) -> str:
        url = super().start()
        self._server.RequestHandlerClass = _SoakHandler  # read per request by socketserver
        return url

    # ---- boards ---------------------------------------------------------------------------
    def grow_to(self, tick: int) -> list:
        """Show each board's pins for ``tick``; returns the pins that are new on every board."""
        shown = min(self.growth.capacity, self.growth.start + self.growth.per_tick * tick)
        new = []
        for slug, board in self.catalog.boards.items():
            before = len(board.pins)
            board.pins = self._all_pins[slug][:shown]  # feed_page and the board page read this list
            new += board.pins[before:]
        self.tick = tick
        return new

    def grow_brand(self, slug: str, tick: int) -> list:
        """Show one brand's pins for ``tick`` (never fewer than now); returns the pins that are new."""
        board = self.catalog.boards[slug]
        shown = min(self.growth.capacity, self.growth.start + self.growth.per_tick * tick)
        before = len(board.pins)
        if shown > before:
            board.pins = self._all_pins[slug][:shown]
        return board.pins[before:]

    def new_pins(self, slug: str, collected: set[str] | None = None) -> list:
        """The brand's board pins not in ``collected`` (pin ids already in its manifest): the ones its next scrape
        downloads; without ``collected``, those added by the latest ``grow_to``."""
        pins = self.catalog.boards[slug].pins
        if collected is not None:
            return [pin for pin in pins if pin.pin_id not in collected]
        return pins[max(0, len(pins) - self.growth.per_tick):] if self.tick > 0 else []

    def brand_of_image(self, image_hex: str) -> str:
        return self._image_brand.get(image_hex, "")

    # ---- faults ---------------------------------------------------------------------------
    def arm(self, kind: str, slug: str, collected: set[str] | None = None) -> Aim:
        if kind in IMAGE_FAULTS:
            pins = self.new_pins(slug, collected)
            if not pins:
                raise ValueError(f"{kind} on {slug}: the board has no new pins this tick to aim at")
            aim = Aim(kind, slug, frozenset(pin.image.hex for pin in pins))
            with self.faults._lock:
                self.faults.aims.append(aim)
        elif kind in BOARD_FAULTS:
            aim = Aim(kind, slug)
            with self._aims_lock:
                self._board_aims[slug] = aim
        else:
            raise ValueError(f"unknown site fault {kind!r}; choose from {IMAGE_FAULTS + BOARD_FAULTS}")
        return aim

    def disarm(self, aim: Aim) -> None:
        aim.armed = False
        with self._aims_lock:
            if self._board_aims.get(aim.brand) is aim:
                del self._board_aims[aim.brand]

    def board_aim(self, slug: str) -> Aim | None:
        with self._aims_lock:
            aim = self._board_aims.get(slug)
            return aim if aim is not None and aim.armed else None

    def hit(self, aim: Aim) -> None:
        with self._aims_lock:
            aim.hits += 1
            self.faults.injected[aim.kind] += 1

    # ---- hooks ----------------------------------------------------------------------------
    def listen(self, callback: Callable[[str, str, str], None]) -> None:
        """``callback(route, brand slug, image hex)`` on every feed and download request (in the request's thread)."""
        self._listeners.append(callback)

    def unlisten(self, callback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def notify(self, route: str, slug: str, image_hex: str) -> None:
        for callback in list(self._listeners):
            callback(route, slug, image_hex)


@dataclass
class Trigger:
    """Fires ``action`` once, on the first request of ``route`` for ``brand`` (and, for images, one of ``hexes``)."""

    route: str
    brand: str
    action: Callable[[], None]
    hexes: frozenset = frozenset()
    fired_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, route: str, slug: str, image_hex: str) -> None:
        if route != self.route or slug != self.brand or (self.hexes and image_hex not in self.hexes):
            return
        with self._lock:
            if self.fired_at is not None:
                return
            self.fired_at = time.time()
        # In the request's thread, before it is answered: the client (the browser mid-scroll, the downloader
        # mid-download) waits for this response while the action kills it.
        self.action()
