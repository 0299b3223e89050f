"""The embedded Pinterest-like site: a threaded stdlib HTTP server on 127.0.0.1.

Routes:
  GET  /                                        boards index
  GET  /login/, POST /login/                    login form; POST sets the ``_pinterest_sess`` cookie
  GET  /<user>/<slug>-runway/                   a brand's board (first pins in the HTML, the rest by JS)
  GET  /search/pins/?q=<brand> runway           the same board content
  GET  /resource/BoardFeedResource/get/?board=<slug>&bookmark=<b>   board feed page (JSON)
  GET  /resource/MoreIdeasResource/get/?board=<slug>&bookmark=<b>   the endless More-ideas feed (JSON)
  GET  /pin/<id>/                               a pin's close-up page
  GET  /i/{236x,474x,736x,originals}/ab/cd/ef/<hex>.<ext>   images, drawn on first request

Boards need no login; the site only records whether a session cookie came along. Credentials are
checked for presence, never stored or logged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import threading
import time
from collections import Counter, deque
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import parse_qs, quote_plus, urlsplit

from fashion_pipeline.common.atomic import write_json
from fashion_pipeline.pinterest.site import pages
from fashion_pipeline.pinterest.site.catalog import DEFAULT_USER, SiteCatalog, SiteMix, stable_int
from fashion_pipeline.pinterest.site.faults import FAULT_KINDS, FaultConfig, FaultPlanner
from fashion_pipeline.pinterest.site.images import CONTENT_TYPES, DEFAULT_DRAW_SCALE, ImageStore

log = logging.getLogger(__name__)
_pause = time.sleep  # one seam for latency and slow faults, so tests can watch them without waiting
SESSION_COOKIE = "_pinterest_sess"
IMAGE_PATH = re.compile(
    r"^/i/(?P<size>236x|474x|736x|originals)/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<c>[0-9a-f]{2})/"
    r"(?P<hex>[0-9a-f]{32})\.(?P<ext>jpg|png|webp|gif)$"
)
PIN_PATH = re.compile(r"^/pin/(?P<pin_id>\d{1,20})/$")
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
LOGIN_WALL = (b"<!DOCTYPE html><html><head><title>Pinterest</title></head><body>"
              b"<h1>Log in to see more</h1><form action=\"/login/\"></form></body></html>")


class _QuietServer(ThreadingHTTPServer):
    """Browsers drop connections mid-request (cancelled image loads); that is not an error."""

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class EmbeddedPinterestSite:
    """A local Pinterest look-alike with one runway board per brand. Usable as a context manager."""

    def __init__(
        self,
        root_dir: Path | str,
        brands: Iterable[str],
        pins_per_board: int | Mapping[str, int] = 30,
        seed: int = 0,
        faults: FaultConfig | None = None,
        latency_s: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mix: SiteMix = SiteMix(),
        user: str = DEFAULT_USER,
        draw_scale: float = DEFAULT_DRAW_SCALE,
    ):
        self.root_dir = Path(root_dir)
        self.catalog = SiteCatalog(brands, pins_per_board, seed, mix, user)
        self.store = ImageStore(self.root_dir, self.catalog, draw_scale)
        self.faults = FaultPlanner(faults)
        self.latency_s = latency_s
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set[str] = set()
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()  # "<route> <status>" -> requests
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=200_000)  # (method, path, status)
        self.logins = 0
        self.session_requests = 0  # requests that carried a valid session cookie
        write_json(self.root_dir / "ground_truth.json", self.ground_truth(), indent=1)

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> str:
        if self._server is None:
            server = _QuietServer(self._address, _Handler)
            server.daemon_threads = True
            server.block_on_close = False
            server.site = self
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="embedded-pinterest", daemon=True)
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "EmbeddedPinterestSite":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded site is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def board_url(self, brand: str) -> str:
        return self.base_url + self.catalog.board_for_brand(brand).path

    def search_url(self, query: str) -> str:
        return f"{self.base_url}/search/pins/?q={quote_plus(query)}"

    def pin_url(self, pin_id: str) -> str:
        return f"{self.base_url}/pin/{pin_id}/"

    # ---- state ---------------------------------------------------------------------------
    def set_faults(self, faults: FaultConfig | None = None, **changes) -> FaultConfig:
        """Replace the fault settings (``None``: no faults), or change some fields of the current ones."""
        if faults is None and changes:
            faults = dataclasses.replace(self.faults.config, **changes)
        self.faults.reset(faults)
        return self.faults.config

    @property
    def session_seen(self) -> bool:
        return self.session_requests > 0

    def board_pin_ids(self, brand: str) -> list[str]:
        return [pin.pin_id for pin in self.catalog.board_for_brand(brand).pins]

    def ground_truth(self) -> dict:
        """The catalog's ground truth, plus where the true garment masks are written (``images.ImageStore``)."""
        from fashion_pipeline.pinterest.site.images import TRUTH_VALUES

        return {**self.catalog.ground_truth(), "true_masks": {
            "folder": self.store.mask_root.name, "file": "<image_hex>.png", "labels": "<image_hex>.json",
            "draw_scale": self.store.draw_scale, "values": TRUTH_VALUES,
            "made": "when an original is drawn; `python -m fashion_pipeline.pinterest.site.masks` makes the rest"}}

    def ground_truth_frame(self):
        """One row per board pin (pandas DataFrame)."""
        import pandas as pd

        pins = self.ground_truth()["pins"]
        return pd.DataFrame([{"pin_id": pin_id, **row} for pin_id, row in pins.items()])

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": dict(self.counters), "logins": self.logins, "session_requests": self.session_requests,
                "faults_injected": dict(self.faults.injected), "images_rendered": self.store.rendered,
                "render_seconds": round(self.store.render_seconds, 3),
            }

    def _record(self, method: str, path: str, route: str, status: int) -> None:
        with self._lock:
            self.counters[f"{route} {status}"] += 1
            self.request_log.append((method, path, status))

    def _open_session(self) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._sessions.add(token)
            self.logins += 1
        return token

    def _note_session(self, token: str | None) -> bool:
        with self._lock:
            valid = token is not None and token in self._sessions
            self.session_requests += valid
            return valid


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN offers
    server_version = "EmbeddedPinterest/1.0"
    timeout = 30  # idle keep-alive connections give their thread back

    @property
    def site(self) -> EmbeddedPinterestSite:
        return self.server.site

    def log_message(self, format, *args):  # noqa: A002 - the site keeps its own log, without credentials
        pass

    # ---- dispatch ------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch(head=False)

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/login/":
            return self._send_html(HTTPStatus.METHOD_NOT_ALLOWED, pages.error_page(405, "POST is only for /login/"), "post")
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if not (form.get("id", [""])[0].strip() and form.get("password", [""])[0]):
            return self._send_html(HTTPStatus.UNAUTHORIZED, pages.login_page("Enter your email and password."), "login")
        token = self.site._open_session()
        self._send(HTTPStatus.FOUND, b"", "text/plain", "login", {
            "Location": "/", "Set-Cookie": f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax",
        })

    def _dispatch(self, head: bool) -> None:
        self.head_only = head
        self._responded = False
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.logged_in = self.site._note_session(self._session_token())
        forced = _forced_fault(query)
        if forced is not None and forced not in FAULT_KINDS:
            message = f"unknown fault {forced!r} in {self.path}; choose from {', '.join(FAULT_KINDS)}"
            return self._send(HTTPStatus.BAD_REQUEST, message.encode(), "text/plain; charset=utf-8", "bad_request")
        try:
            image = IMAGE_PATH.match(url.path)
            if image:
                return self._serve_image(url.path, image, query)
            if self._page_fault(url.path, query):
                return
            if url.path == "/":
                return self._send_html(HTTPStatus.OK, pages.home_page(list(self.site.catalog.boards.values()), self.logged_in), "home")
            if url.path == "/login/":
                return self._send_html(HTTPStatus.OK, pages.login_page(), "login")
            if url.path in (pages.BOARD_RESOURCE, pages.MORE_RESOURCE):
                return self._serve_feed(url.path, query)
            if url.path == "/search/pins/":
                return self._serve_search(query)
            pin = PIN_PATH.match(url.path)
            if pin:
                return self._serve_pin_page(pin["pin_id"])
            board = self._board_for_path(url.path)
            if board is not None:
                return self._serve_board(board, query)
            self._send_html(HTTPStatus.NOT_FOUND, pages.error_page(404, f"no page at {url.path}"), "not_found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to answer
        except Exception as error:  # a bug or a failed drawing: answer 500 rather than drop the connection
            log.exception("embedded site: %s %s failed", self.command, url.path)
            self.close_connection = True
            if not self._responded:
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}".encode(), "text/plain", "error")

    def _session_token(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(SESSION_COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel else None

    def _board_for_path(self, path: str):
        for board in self.site.catalog.boards.values():
            if path == board.path or path == board.path.rstrip("/"):
                return board
        return None

    # ---- pages ---------------------------------------------------------------------------
    def _serve_board(self, board, query) -> None:
        endless = _flag(query, "endless") or self.site.faults.config.endless_feed
        pins, bookmark, _ = self.site.catalog.feed_page(board.slug, None, pages.INITIAL_PINS, endless)
        html = pages.board_page(board, pins, bookmark, self.site.base_url, self.logged_in,
                                recommendations=self.site.catalog.recommendations_heading(board.slug))
        self._send_html(HTTPStatus.OK, html, "board")

    def _serve_search(self, query) -> None:
        text = query.get("q", [""])[0]
        board = self.site.catalog.board_for_query(text)
        if board is None:
            return self._send_html(HTTPStatus.OK, pages.search_page_without_results(text, self.logged_in), "search")
        endless = _flag(query, "endless") or self.site.faults.config.endless_feed
        pins, bookmark, _ = self.site.catalog.feed_page(board.slug, None, pages.INITIAL_PINS, endless)
        html = pages.board_page(board, pins, bookmark, self.site.base_url, self.logged_in, heading=text,
                                recommendations=self.site.catalog.recommendations_heading(board.slug))
        self._send_html(HTTPStatus.OK, html, "search")

    def _serve_feed(self, path: str, query) -> None:
        slug = query.get("board", [""])[0]
        bookmark = query.get("bookmark", [""])[0] or None
        if slug not in self.site.catalog.boards:
            return self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no board {slug!r}"}, "feed")
        if path == pages.MORE_RESOURCE and bookmark is None:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": "MoreIdeasResource needs a bookmark"}, "feed")
        endless = _flag(query, "endless") or self.site.faults.config.endless_feed
        try:
            pins, next_bookmark, phase = self.site.catalog.feed_page(slug, bookmark, pages.PAGE_SIZE, endless)
        except ValueError as error:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)}, "feed")
        expected = "more" if path == pages.MORE_RESOURCE else "board"
        if phase != expected:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"bookmark belongs to the {phase} feed"}, "feed")
        base = self.site.base_url
        body = {
            "resource_response": {"status": "success", "data": [pages.pin_json(p, base) for p in pins], "bookmark": next_bookmark},
            "resource": {"name": path.split("/")[2], "options": {"board": slug, "bookmark": bookmark}},
        }
        self._send_json(HTTPStatus.OK, body, "more_ideas" if phase == "more" else "feed")

    def _serve_pin_page(self, pin_id: str) -> None:
        pin = self.site.catalog.pin(pin_id)
        if pin is None:
            return self._send_html(HTTPStatus.NOT_FOUND, pages.error_page(404, f"no pin {pin_id}"), "pin")
        self._send_html(HTTPStatus.OK, pages.pin_page(pin, self.site.base_url, self.logged_in), "pin")

    def _page_fault(self, path: str, query) -> bool:
        """500/429/slow on pages and feeds: only when configured with include_pages or forced."""
        kind = self.site.faults.decide(path, is_image=False, forced=_forced_fault(query))
        if kind == "slow":
            _pause(self.site.faults.config.slow_delay_s)
            return False
        if kind in ("500", "429"):
            self._send_status_fault(kind, "page")
            return True
        return False

    # ---- images --------------------------------------------------------------------------
    def _serve_image(self, path: str, match, query) -> None:
        if self.site.latency_s:
            _pause(self.site.latency_s)
        spec = self.site.catalog.image(match["hex"])
        if spec is None or (match["a"], match["b"], match["c"]) != (spec.hex[0:2], spec.hex[2:4], spec.hex[4:6]):
            return self._send(HTTPStatus.NOT_FOUND, b"Not Found", "text/plain", "image")
        size_name = match["size"]
        if size_name == "originals" and not spec.has_original:
            return self._send(HTTPStatus.FORBIDDEN, ACCESS_DENIED, "application/xml", "image")
        expected_ext = spec.original_ext if size_name == "originals" else "jpg"
        if match["ext"] != expected_ext:
            return self._send(HTTPStatus.NOT_FOUND, b"Not Found", "text/plain", "image")
        kind = self.site.faults.decide(path, is_image=True, forced=_forced_fault(query))
        if kind in ("500", "429"):
            return self._send_status_fault(kind, "image")
        if kind == "slow":
            _pause(self.site.faults.config.slow_delay_s)
        if kind == "html":
            return self._send(HTTPStatus.OK, LOGIN_WALL, "text/html; charset=utf-8", "image_fault")
        if kind == "html_disguised":
            return self._send(HTTPStatus.OK, LOGIN_WALL, "image/jpeg", "image_fault")
        body = self.site.store.read(spec, size_name)
        content_type = CONTENT_TYPES[expected_ext]
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        if kind == "truncated":
            return self._send_truncated(body, content_type)
        if kind == "garbage":
            return self._send(HTTPStatus.OK, _garbage_after_header(body, path), content_type, "image_fault", headers)
        self._send(HTTPStatus.OK, body, content_type, "image", headers)

    def _send_truncated(self, body: bytes, content_type: str) -> None:
        """Promise the whole body, send half of it, then drop the connection."""
        self._responded = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.site._record(self.command, self.path, "image_fault", HTTPStatus.OK)

    def _send_status_fault(self, kind: str, route: str) -> None:
        if kind == "429":
            retry = str(self.site.faults.config.retry_after_s)
            return self._send(HTTPStatus.TOO_MANY_REQUESTS, b"Too Many Requests", "text/plain", route, {"Retry-After": retry})
        self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"Internal Server Error", "text/plain", route)

    # ---- responses -----------------------------------------------------------------------
    def _send_html(self, status: int, html: str, route: str) -> None:
        self._send(status, html.encode("utf-8"), "text/html; charset=utf-8", route)

    def _send_json(self, status: int, obj, route: str) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", route)

    def _send(self, status: int, body: bytes, content_type: str, route: str, headers: dict | None = None) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not getattr(self, "head_only", False):
            self.wfile.write(body)
        # Never log the query of a login request; other paths carry no secrets.
        logged = "/login/" if self.path.startswith("/login/") else self.path
        self.site._record(self.command, logged, route, int(status))


def _garbage_after_header(body: bytes, path: str) -> bytes:
    """The file's first bytes (a valid signature and header) and then noise, at the full length."""
    import numpy as np

    keep = min(32, len(body))
    noise = np.random.default_rng(stable_int("garbage", path)).integers(0, 256, len(body) - keep, dtype=np.uint8)
    return body[:keep] + noise.tobytes()


def _forced_fault(query) -> str | None:
    return query.get("fault", [None])[0]


def _flag(query, name: str) -> bool:
    return query.get(name, ["0"])[0].lower() in ("1", "true", "yes")
