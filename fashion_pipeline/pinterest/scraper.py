"""Scroll a Pinterest board (or search) in headless Chromium and collect its pins.

The thesis's procedure (section 3.2.1): log in, open the brand's board, scroll until every pin has
loaded, bounded by a maximum number of iterations and a persistence setting, then take every
picture. Here each scroll round is ONE asynchronous ``execute_script`` call that collects the
visible pins (id, page URL, ``src``, ``srcset``), scrolls, and waits until the page grows or the
pause runs out. Pins are keyed by id, so a virtualised grid that drops off-screen pins loses
nothing.

Where a board ends. After its own pins a board page shows recommendations, an endless feed of
other people's pins under a heading whose wording varies ("More ideas for this board", "Find some
ideas for this board", "More like this", ... or the same in the page's language). They are never
collected. The board is bounded by the page's structure first: only pins inside the board's own
feed container (``Selectors.board_container``) count, and the board has ended once a pin shows up
outside it, after it. A recommendations heading (any of ``END_OF_BOARD_HEADINGS``, in several
languages) after the board's start is a second signal: pins after it never count either. A page
with no recognisable container falls back to the heading alone; ``ScrapeResult.board_boundary``
says which (``board_container`` or ``heading_fallback``), ``end_signal`` what ended the scroll.

    python -m fashion_pipeline.pinterest.scraper --url https://www.pinterest.com/<user>/<board>/ --out pins.json
    python -m fashion_pipeline.pinterest.scraper --embedded Prada --out pins.json --download-to data
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from fashion_pipeline.common.atomic import write_json
from fashion_pipeline.pinterest.download import Pin

log = logging.getLogger(__name__)


# Headings over the recommendations after a board, compared case-folded, whitespace collapsed and
# trailing punctuation dropped; a heading that starts with one of them followed by a space matches
# too ("More ideas" covers "More ideas like this"). The English and Spanish ones are those public
# Pinterest scrapers stop at (PROVENANCE.md next to the real-page fixture); the others are the
# same phrases in languages Pinterest serves, our translations: extend the tuple for a new locale.
END_OF_BOARD_HEADINGS = (
    "More ideas", "More ideas for this board", "Find some ideas for this board", "Find more ideas for this board",
    "More like this", "More ideas like this", "You might also like", "More to explore",
    "Más ideas", "Encuentra algunas ideas para este tablero",  # es
    "Другие идеи", "Другие идеи для этой доски", "Больше идей", "Больше идей для этой доски", "Похожие пины",  # ru
    "Weitere Ideen", "Weitere Ideen für diese Pinnwand",  # de
    "Plus d'idées", "Plus d'idées pour ce tableau",  # fr
    "Altre idee", "Altre idee per questa bacheca",  # it
)


@dataclass(frozen=True)
class Selectors:
    """CSS selectors, pinterest.com's as far as they are known; configurable because they drift."""

    pin: str = 'div[data-test-id="pin"]'
    pin_link: str = 'a[href*="/pin/"]'
    # The board's own feed: "board-feed" on a saved real board page, "base-board-pin-grid" in
    # later scrapers' selectors. Empty: no container (heading fallback only).
    board_container: str = '[data-test-id="board-feed"], [data-test-id="base-board-pin-grid"]'
    # Sections known to hold recommendations: pins inside them never count, wherever they are.
    recommendations: str = ('[data-test-id="more-ideas-feed"], [data-test-id="related-pins"], '
                            '[data-test-id="more-like-this"], [data-test-id="related-interests-multi-column-module"]')
    end_of_board: str = 'div[data-test-id="more-ideas-header"]'
    end_of_board_text: str = "More ideas"  # one more heading, kept for the resource's config field
    end_of_board_headings: tuple[str, ...] = END_OF_BOARD_HEADINGS

    def headings(self) -> list[str]:
        """The end-of-board headings, normalised as the page script compares them."""
        phrases = [*self.end_of_board_headings, *([self.end_of_board_text] if self.end_of_board_text else [])]
        return list(dict.fromkeys(normalise_heading(p) for p in phrases if normalise_heading(p)))
    login_email: str = 'input[name="id"]'
    login_password: str = 'input[name="password"]'
    login_submit: str = 'button[type="submit"]'


@dataclass(frozen=True)
class ScrollSettings:
    max_iterations: int = 300  # scroll rounds at most
    persistence: int = 5  # stop after this many rounds in a row without a new pin
    scroll_pause_s: float = 2.0  # longest wait for new pins after a scroll
    page_load_timeout_s: float = 60.0
    max_pins: int = 0  # stop once this many pins are collected; 0 = no cap


def normalise_heading(text: str) -> str:
    """Case-folded, whitespace collapsed, trailing punctuation dropped (as ``_ROUND_JS``'s ``norm``)."""
    return " ".join(text.split()).lower().rstrip(" .:!?…")


@dataclass
class ScrapeResult:
    url: str
    pins: list[Pin] = field(default_factory=list)
    rounds: int = 0
    stopped_because: str = ""  # end_of_board | no_new_pins | max_iterations | max_pins
    pins_without_image: int = 0
    duration_s: float = 0.0
    board_boundary: str = ""  # board_container | heading_fallback (no recognisable container)
    end_signal: str = ""  # what ended the board: end_selector | heading | container ("" if it never ended)
    end_heading: str = ""  # the heading's text when a heading ended it
    pins_outside_board: int = 0  # distinct recommended (or otherwise outside) pins seen and left out

    @property
    def reached_end_of_board(self) -> bool:
        return self.stopped_because == "end_of_board"


# The scraper reads <img> attributes and never needs the pixels: not loading images keeps the
# browser from downloading every thumbnail (politer, and the board's feed requests are not queued
# behind them on the per-host connection limit).
BROWSER_ARGS = ("--blink-settings=imagesEnabled=false",)


def start_browser():
    """Headless Debian Chromium (see ``common/browser.py``) with image loading off."""
    from fashion_pipeline.common.browser import chrome_driver

    return chrome_driver(extra_args=BROWSER_ARGS)


class KeptBrowsers:
    """Browsers kept open between scrapes in one process (``make demo`` runs every brand in one
    process: starting Chromium and logging in once instead of twenty times). A browser is
    handed to one user at a time and dropped if it stopped answering."""

    def __init__(self):
        self._kept: dict[tuple, object] = {}
        self._lock = threading.Lock()
        atexit.register(self.quit_all)

    def take(self, key: tuple):
        with self._lock:
            driver = self._kept.pop(key, None)
        if driver is None:
            return None
        try:
            driver.current_url  # noqa: B018 - a cheap round trip: is the browser still there?
            return driver
        except Exception:
            _quit_quietly(driver)
            return None

    def give_back(self, key: tuple, driver) -> None:
        with self._lock:
            previous = self._kept.get(key)
            self._kept[key] = driver
        if previous is not None:
            _quit_quietly(previous)

    def quit_all(self) -> None:
        with self._lock:
            drivers, self._kept = list(self._kept.values()), {}
        for driver in drivers:
            _quit_quietly(driver)


def _quit_quietly(driver) -> None:
    try:
        driver.quit()
    except Exception:  # already gone: nothing left to clean up
        pass


class LoginFailed(RuntimeError):
    """The login form did not go away; the message never contains the credentials."""


# One round: collect the board's own pins (inside its container, before any end heading, outside
# known recommendation sections), scroll (to the first pin whose lazy image has no src yet, else to
# the bottom), then wait until the grid changes or time runs out.
_ROUND_JS = r"""
const [pinSel, linkSel, containerSel, recSel, endSel, headings, waitMs] = arguments;
const done = arguments[arguments.length - 1];
const norm = t => (t || '').replace(/\s+/g, ' ').trim().toLowerCase().replace(/[\s.:!?…]+$/, '');
const follows = (a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);  // b after a
const container = containerSel ? document.querySelector(containerSel) : null;
// A heading counts only after the board's start (its container, else its first pin): the board's
// own title comes before its pins, whatever it says.
function findHeading() {
  const start = container || document.querySelector(pinSel);
  if (!start) return null;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, [role="heading"]')) {
    const text = norm(h.textContent);
    if (!text || !headings.some(p => text === p || text.startsWith(p + ' '))) continue;
    if (start === h || start.contains(h) || follows(start, h)) return h;
  }
  return null;
}
function findEnd() {
  const marker = endSel ? document.querySelector(endSel) : null;
  if (marker) return {node: marker, signal: 'end_selector'};
  const heading = findHeading();
  if (heading) return {node: heading, signal: 'heading'};
  return null;
}
const end = findEnd();
const pins = [], outside = [];
let firstMissing = null, outsideAfterBoard = false;
for (const pin of document.querySelectorAll(pinSel)) {
  const link = pin.querySelector(linkSel);
  const idMatch = link ? (link.getAttribute('href') || '').match(/\/pin\/([^\/?#]+)/) : null;
  const notInBoard = container && !container.contains(pin);
  if (notInBoard && follows(container, pin)) outsideAfterBoard = true;
  if (notInBoard || (recSel && pin.closest(recSel)) || (end && follows(end.node, pin))) {
    if (idMatch) outside.push(idMatch[1]);
    continue;
  }
  const img = pin.querySelector('img');
  if (!link || !img) continue;
  const match = (link.getAttribute('href') || '').match(/\/pin\/([^\/?#]+)/);
  if (!match) continue;
  const src = img.getAttribute('src') ? img.src : (img.dataset.src || '');
  const srcset = img.getAttribute('srcset') || img.dataset.srcset || '';
  if (!src && !firstMissing) firstMissing = pin;
  const media = pin.querySelector('video') ? 'video' : 'image';
  pins.push({pin_id: match[1], page_url: link.href, src: src, srcset: srcset, media: media});
}
const signal = end ? end.signal : (outsideAfterBoard ? 'container' : '');
const signature = () => document.querySelectorAll(pinSel).length + '|' + document.body.scrollHeight
  + '|' + !!findEnd();
const before = signature();
if (firstMissing) firstMissing.scrollIntoView({block: 'center'});
else if (!signal) window.scrollTo(0, document.body.scrollHeight);
const result = {pins: pins, outside: outside, end: !!signal, signal: signal,
  heading: end && end.signal === 'heading' ? end.node.textContent.trim() : '',
  container: !!container, missing: !!firstMissing, base: document.baseURI};
if (signal && !firstMissing) { done(result); return; }
const deadline = Date.now() + waitMs;
(function poll() {
  if (signature() !== before || Date.now() > deadline) done(result);
  else setTimeout(poll, 50);
})();
"""


def _absolute_srcset(srcset: str, base: str) -> str:
    """Resolve each URL of a srcset against the page, keeping its descriptor (``2x``, ``474w``)."""
    items = []
    for item in srcset.split(","):
        parts = item.split()
        if parts:
            items.append(" ".join([urljoin(base, parts[0]), *parts[1:]]))
    return ", ".join(items)


class PinCollector:
    """Accumulates pins across rounds, keyed by id; a pin's image may arrive in a later round."""

    def __init__(self):
        self.by_id: dict[str, dict] = {}
        self.outside: set[str] = set()  # ids seen outside the board (recommendations)

    def add(self, records: list[dict], base: str) -> int:
        """Merge one round's records; returns how many pins gained an image URL."""
        new = 0
        for record in records:
            known = self.by_id.get(record["pin_id"])
            if known and known["src"]:
                continue
            if record["src"]:
                new += 1
                record = {**record, "src": urljoin(base, record["src"]), "srcset": _absolute_srcset(record["srcset"], base)}
            self.by_id[record["pin_id"]] = record
        return new

    def pins(self) -> list[Pin]:
        return [Pin(r["pin_id"], r["page_url"], r["src"], r["srcset"] or None, r.get("media", "image"))
                for r in self.by_id.values() if r["src"]]

    def pins_outside(self) -> int:
        """Distinct pins seen only outside the board (a pin that was ever in it does not count)."""
        return len(self.outside - self.by_id.keys())

    def without_image(self) -> int:
        return sum(1 for r in self.by_id.values() if not r["src"])


def scroll_and_collect(driver, url: str, settings: ScrollSettings, selectors: Selectors = Selectors()) -> ScrapeResult:
    """Open ``url`` and scroll until the board ends, nothing new appears, or a cap is hit."""
    started = time.monotonic()
    driver.set_page_load_timeout(settings.page_load_timeout_s)
    driver.set_script_timeout(settings.scroll_pause_s + 30)
    driver.get(url)
    collector, result, idle = PinCollector(), ScrapeResult(url=url), 0
    wait_ms = int(settings.scroll_pause_s * 1000)
    for result.rounds in range(1, settings.max_iterations + 1):
        state = driver.execute_async_script(
            _ROUND_JS, selectors.pin, selectors.pin_link, selectors.board_container, selectors.recommendations,
            selectors.end_of_board, selectors.headings(), wait_ms,
        )
        new = collector.add(state["pins"], state["base"])
        collector.outside.update(state["outside"])
        _note_boundary(result, state)
        idle = 0 if new else idle + 1
        stop = _stop_reason(state, idle, len(collector.by_id), settings)
        if stop:
            result.stopped_because = stop
            break
    else:
        result.stopped_because = "max_iterations"
    result.pins, result.pins_without_image = collector.pins(), collector.without_image()
    result.pins_outside_board = collector.pins_outside()
    if settings.max_pins:
        result.pins = result.pins[: settings.max_pins]
    result.duration_s = time.monotonic() - started
    if result.board_boundary == "heading_fallback":
        log.warning("%s: no board container (%s) on the page: the board was bounded by its end heading only",
                    url, selectors.board_container or "none configured")
    log.info("%s: %d pins in %d rounds (%s via %s; %d recommended pins left out)", url, len(result.pins),
             result.rounds, result.stopped_because, result.end_signal or "-", result.pins_outside_board)
    return result


def _note_boundary(result: ScrapeResult, state: dict) -> None:
    """How the board is bounded (container once seen counts) and what ended it."""
    if state["container"] or result.board_boundary != "board_container":
        result.board_boundary = "board_container" if state["container"] else "heading_fallback"
    if state["signal"]:
        result.end_signal, result.end_heading = state["signal"], state["heading"]


def _stop_reason(state: dict, idle_rounds: int, collected: int, settings: ScrollSettings) -> str | None:
    if state["end"] and not state["missing"]:
        return "end_of_board"
    if settings.max_pins and collected >= settings.max_pins:
        return "max_pins"
    if idle_rounds >= settings.persistence:
        return "no_new_pins"
    return None


@contextlib.contextmanager
def _wire_log_silenced():
    """Selenium logs every WebDriver command body at DEBUG, typed text included: keep the
    credentials out of any log, whatever level the user set."""
    wire_log = logging.getLogger("selenium.webdriver.remote.remote_connection")
    previous = wire_log.level
    wire_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        wire_log.setLevel(previous)


def login(driver, base_url: str, email: str, password: str, selectors: Selectors = Selectors(), timeout_s: float = 30.0) -> None:
    """Fill pinterest's login form and wait for it to go away."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    login_url = base_url.rstrip("/") + "/login/"
    driver.get(login_url)
    wait = WebDriverWait(driver, timeout_s)
    try:
        email_box = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, selectors.login_email)))
    except TimeoutException as error:
        raise LoginFailed(f"{login_url}: no login field {selectors.login_email!r} within {timeout_s}s") from error
    password_box = driver.find_element(By.CSS_SELECTOR, selectors.login_password)
    with _wire_log_silenced():
        email_box.send_keys(email)
        password_box.send_keys(password)
    driver.find_element(By.CSS_SELECTOR, selectors.login_submit).click()
    try:
        wait.until(EC.staleness_of(password_box))
    except TimeoutException as error:
        raise LoginFailed(f"{login_url}: still on the login form after {timeout_s}s (wrong credentials?)") from error


def _embedded_url(brand: str, site_root: str, pins_per_board: int) -> tuple[object, str]:
    from fashion_pipeline.pinterest.brands import load_brands
    from fashion_pipeline.pinterest.site import EmbeddedPinterestSite

    site = EmbeddedPinterestSite(site_root, [b.name for b in load_brands()], pins_per_board=pins_per_board)
    site.start()
    return site, site.board_url(brand)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scroll a board and write its pins as JSON (for download.py).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="board or search URL")
    source.add_argument("--embedded", metavar="BRAND", help="a brand board of the embedded local site")
    parser.add_argument("--site-root", default="data/pinterest_site", help="embedded site's image cache")
    parser.add_argument("--pins-per-board", type=int, default=30)
    parser.add_argument("--out", required=True)
    parser.add_argument("--download-to", metavar="DATA_ROOT",
                        help="also download the images (needed with --embedded: the site stops when this exits)")
    defaults = ScrollSettings()
    parser.add_argument("--max-iterations", type=int, default=defaults.max_iterations)
    parser.add_argument("--persistence", type=int, default=defaults.persistence)
    parser.add_argument("--scroll-pause", type=float, default=defaults.scroll_pause_s)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    site, url = _embedded_url(args.embedded, args.site_root, args.pins_per_board) if args.embedded else (None, args.url)
    settings = ScrollSettings(max_iterations=args.max_iterations, persistence=args.persistence, scroll_pause_s=args.scroll_pause)
    driver = start_browser()
    try:
        result = scroll_and_collect(driver, url, settings)
        write_json(Path(args.out), [asdict(pin) for pin in result.pins], indent=1)
        print(f"{len(result.pins)} pins from {url} in {result.rounds} rounds ({result.stopped_because}) -> {args.out}")
        if args.download_to:
            from urllib.parse import urlsplit

            from fashion_pipeline.pinterest.brands import slugify
            from fashion_pipeline.pinterest.download import DownloadSettings, download_pins

            # Images from pinimg.com, and from the embedded site's loopback address when it serves them.
            settings = DownloadSettings().with_hosts(*([urlsplit(site.base_url).hostname] if site else []))
            report = download_pins(result.pins, slugify(args.embedded or "brand"), args.download_to, settings)
            print(json.dumps({k: v for k, v in report.as_dict().items() if k != "new_files"}, indent=2))
    finally:
        driver.quit()
        if site is not None:
            site.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
