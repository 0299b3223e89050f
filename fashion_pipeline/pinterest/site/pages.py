"""HTML of the embedded site. The DOM follows Pinterest's where a scraper looks:

- a board's pins sit in ``div[data-test-id="board-feed"]``, the board's own feed container; each is
  ``div[data-test-id="pin"]`` holding ``a[href="/pin/<id>/"]`` and an ``<img>`` whose ``src`` is the
  236x URL and whose ``srcset`` lists the 236x, 474x and 736x URLs and the original
  (``1x, 2x, 3x`` and ``.../originals/...<its own extension> 4x``), as a saved real board page does;
  a video pin also holds a ``<video>``;
- after the board, outside its container, a recommendations section: a heading whose text varies
  by board (``catalog.RECOMMENDATION_HEADINGS``: several English phrasings, and a Russian one on a
  ``lang="ru"`` page), with no test id of its own, then an endless ``div[data-test-id="more-ideas-feed"]``
  (added by ``static/board.js``);
- the login form has ``input#email[name=id]``, ``input#password[name=password]`` and a submit button.
"""
from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from importlib import resources

from fashion_pipeline.pinterest.site.catalog import Board, Pin, encode_bookmark

INITIAL_PINS = 15  # pins in the board's HTML; the rest come through the feed resource
PAGE_SIZE = 25  # pins per feed resource page, as on Pinterest
PREFETCH_PX = 1500  # fetch the next page when the bottom is this close
BOARD_RESOURCE = "/resource/BoardFeedResource/get/"
MORE_RESOURCE = "/resource/MoreIdeasResource/get/"


@lru_cache(maxsize=None)
def _static(name: str) -> str:
    return resources.files("fashion_pipeline.pinterest.site").joinpath("static", name).read_text(encoding="utf-8")


def pin_json(pin: Pin, base_url: str) -> dict:
    images = {}
    for size_name in ("236x", "474x", "736x"):
        width, height = pin.image.rendition_size(size_name)
        images[size_name] = {"url": base_url + pin.image.path(size_name), "width": width, "height": height}
    width, height = pin.image.size
    images["orig"] = {"url": base_url + pin.image.path("originals"), "width": width, "height": height}
    data = {"id": pin.pin_id, "type": "pin", "title": pin.title, "images": images}
    if pin.image.is_video:
        data["videos"] = {"video_list": {"V_720P": {"url": f"{base_url}/v/{pin.image.hex}.mp4"}}}
    return data


def pin_html(pin: Pin, base_url: str) -> str:
    data = pin_json(pin, base_url)
    small, medium, large, orig = (data["images"][s] for s in ("236x", "474x", "736x", "orig"))
    title = escape(pin.title)
    video = ""
    if "videos" in data:
        video = f'<video preload="none" muted src="{data["videos"]["video_list"]["V_720P"]["url"]}"></video>'
    return (
        f'<div class="pin" data-test-id="pin" data-pin-id="{pin.pin_id}">'
        f'<a href="/pin/{pin.pin_id}/" aria-label="{title}">'
        f'<img alt="{title}" loading="lazy" decoding="async" width="{small["width"]}" height="{small["height"]}" '
        f'srcset="{small["url"]} 1x, {medium["url"]} 2x, {large["url"]} 3x, {orig["url"]} 4x" src="{small["url"]}">'
        f"{video}</a></div>"
    )


def layout(title: str, body: str, logged_in: bool, script: str = "", lang: str = "en") -> str:
    account = '<span class="account" data-test-id="header-profile">Signed in</span>' if logged_in else \
        '<a class="account" href="/login/" data-test-id="login-button">Log in</a>'
    return (
        f"<!DOCTYPE html>\n<html lang=\"{escape(lang)}\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<style>{_static('site.css')}</style></head><body>"
        '<header class="top"><a class="logo" href="/">Pinterest</a>'
        '<form action="/search/pins/" method="get"><input type="search" name="q" placeholder="Search" aria-label="Search"></form>'
        f"{account}</header><main>{body}</main>{script}</body></html>"
    )


def board_page(board: Board, first_pins: list[Pin], bookmark: str, base_url: str, logged_in: bool,
               heading: str | None = None, recommendations: tuple[str, str] = ("en", "More ideas")) -> str:
    """``recommendations``: (language, heading) of the section after the board; the language is the page's."""
    lang, recommendations_heading = recommendations
    config = {
        "board": board.slug, "bookmark": bookmark, "more_bookmark": encode_bookmark("more", 0),
        "board_resource": BOARD_RESOURCE, "more_resource": MORE_RESOURCE, "prefetch_px": PREFETCH_PX,
        "recommendations_heading": recommendations_heading,
    }
    pins = "".join(pin_html(pin, base_url) for pin in first_pins)
    body = (
        f'<div class="board-header"><h1>{escape(heading or board.brand + " Runway")}</h1>'
        f'<div data-test-id="board-pin-count">{len(board.pins)} Pins</div></div>'
        f'<div class="feed" data-test-id="board-feed">{pins}</div>'
    )
    # "</" cannot end the script early: json.dumps output is escaped for that below.
    config_json = json.dumps(config).replace("</", "<\\/")
    script = (f'<script type="application/json" id="board-config">{config_json}</script>'
              f"<script>{_static('board.js')}</script>")
    return layout(heading or f"{board.brand} Runway", body, logged_in, script, lang=lang)


def search_page_without_results(query: str, logged_in: bool) -> str:
    body = (f'<div class="board-header"><h1>{escape(query)}</h1><p>No pins found.</p></div>'
            '<div class="feed" data-test-id="board-feed"></div>'
            '<div class="more-ideas-header"><h2>More ideas</h2></div>'
            '<div class="feed" data-test-id="more-ideas-feed"></div>')
    return layout(query, body, logged_in)


def home_page(boards: list[Board], logged_in: bool) -> str:
    links = "".join(f'<a href="{escape(b.path)}" data-test-id="board-link">{escape(b.brand)} Runway'
                    f"<br><small>{len(b.pins)} Pins</small></a>" for b in boards)
    return layout("Pinterest (embedded)", f'<div class="board-header"><h1>Runway boards</h1></div><div class="boards">{links}</div>', logged_in)


def login_page(error: str | None = None) -> str:
    message = f'<p class="error" data-test-id="login-error">{escape(error)}</p>' if error else ""
    form = (
        '<form class="login" method="post" action="/login/" data-test-id="login-form"><h1>Log in</h1>'
        f'{message}<input id="email" name="id" type="email" placeholder="Email" autocomplete="username">'
        '<input id="password" name="password" type="password" placeholder="Password" autocomplete="current-password">'
        '<button type="submit">Log in</button></form>'
    )
    return layout("Log in", form, logged_in=False)


def pin_page(pin: Pin, base_url: str, logged_in: bool) -> str:
    width, height = pin.image.rendition_size("736x")
    back = '<p><a href="/">Home</a></p>'
    body = (f'<div class="closeup"><img data-test-id="closeup-image" alt="{escape(pin.title)}" '
            f'src="{base_url}{pin.image.path("736x")}" width="{width}" height="{height}"></div>'
            f"<h1>{escape(pin.title)}</h1>{back}")
    return layout(pin.title, body, logged_in)


def error_page(status: int, message: str) -> str:
    return layout(f"{status}", f'<div class="board-header"><h1>{status}</h1><p>{escape(message)}</p></div>', logged_in=False)
