"""The scraper's real parsing code on a real saved Pinterest board page (not one we wrote).

The page is a Russian-locale board saved from pinterest.com in January 2020 (18 pins, the board's
``data-test-id="board-feed"`` container, ``srcset``s ending in ``originals 4x``, 4 of them ``.gif``);
see ``fixtures/real/pinterest/PROVENANCE.md``. Its repository carries no licence, so the page
itself is not committed; its structure-only skeleton is (``board_skeleton_ru.html``, made by
``bench/pinterest_real_page_skeleton.py``: every element, test id, ``/pin/`` link and ``srcset`` in
place, ids and hashes replaced, no text). The tests run on the skeleton always, and on the full
page too when ``FASHION_PIPELINE_REAL_PINTEREST_PAGE`` points at a copy (``git clone
https://github.com/maksimKorzh/one-time-scrapers``, ``scrapers/pinterest/images.html``).
The saved page ends with its board; each test adds a recommendations section after the board, as
real users report Pinterest showing, by cloning the page's own pin cards under one heading, in
Chromium, and scrapes the result from a file:// URL.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fashion_pipeline.pinterest.scraper import ScrollSettings, Selectors, scroll_and_collect, start_browser
from fashion_pipeline.pinterest.urls import image_candidates

ENV_VAR = "FASHION_PIPELINE_REAL_PINTEREST_PAGE"
SKELETON = Path(__file__).parent / "fixtures" / "real" / "pinterest" / "board_skeleton_ru.html"
FULL_PAGE = Path(os.environ.get(ENV_VAR, "/nonexistent"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["skeleton", "full_page"])
def page(request) -> Path:
    if request.param == "full_page" and not FULL_PAGE.is_file():
        pytest.skip(f"set {ENV_VAR} to the saved real board page (see the module docstring)")
    return SKELETON if request.param == "skeleton" else FULL_PAGE
QUICK = ScrollSettings(max_iterations=20, persistence=3, scroll_pause_s=0.3, page_load_timeout_s=30)
HEADINGS = ("More ideas for this board", "Find some ideas for this board", "More like this", "Другие идеи для этой доски")

# Clone the page's own pin cards (new ids) into a section after the board, under one heading.
_ADD_RECOMMENDATIONS = r"""
const [heading, count] = arguments;
const feed = document.querySelector('[data-test-id="board-feed"]');
const cards = Array.from(feed.querySelectorAll('[data-test-id="pin"]')).slice(0, count);
const section = document.createElement('div');
section.innerHTML = '<div class="zI7 iyn Hsu"><h2 class="lH1 dyH iFc">' + heading + '</h2></div>';
const grid = document.createElement('div');
cards.forEach((card, i) => {
  const copy = card.cloneNode(true);
  copy.querySelector('a[href*="/pin/"]').setAttribute('href', '/pin/99999999999' + String(i).padStart(4, '0') + '/');
  grid.appendChild(copy);
});
section.appendChild(grid);
const footer = document.querySelector('[data-test-id="footer"]');
footer.parentNode.insertBefore(section, footer);
for (const s of Array.from(document.querySelectorAll('script'))) s.remove();
return '<!DOCTYPE html>\n' + document.documentElement.outerHTML;
"""


@pytest.fixture(scope="module")
def driver():
    browser = start_browser()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def board_ids(page) -> list[str]:
    html = page.read_text(encoding="utf-8")
    feed = html[html.index('data-test-id="board-feed"'):]
    return list(dict.fromkeys(re.findall(r'href="/pin/(\d+)/"', feed)))


def page_with_recommendations(driver, page: Path, tmp_path: Path, heading: str) -> str:
    driver.get(page.resolve().as_uri())
    html = driver.execute_script(_ADD_RECOMMENDATIONS, heading, 12)
    out = tmp_path / f"board-{abs(hash(heading))}.html"
    out.write_text(html, encoding="utf-8")
    return out.as_uri()


def test_the_saved_page_is_what_we_think(page, board_ids):
    html = page.read_text(encoding="utf-8")
    assert len(board_ids) == 18 and '<html lang="ru"' in html
    originals = re.findall(r"https://i\.pinimg\.com/originals/\S+ 4x", html)
    assert len(originals) == 18 and sum(".gif 4x" in o for o in originals) == 4


@pytest.mark.parametrize("heading", HEADINGS)
def test_only_the_board_pins_are_collected_under_each_heading(driver, page, tmp_path, board_ids, heading):
    url = page_with_recommendations(driver, page, tmp_path, heading)
    result = scroll_and_collect(driver, url, QUICK)
    assert [pin.pin_id for pin in result.pins] == board_ids
    assert result.board_boundary == "board_container" and result.stopped_because == "end_of_board"
    assert result.pins_outside_board == 12  # the cloned recommendations, all left out
    # The originals come from the page's srcset, with their real extension (4 GIFs).
    candidates = [image_candidates(pin.src, pin.srcset) for pin in result.pins]
    assert all(c.original_from == "srcset" and len(c.originals) == 1 for c in candidates)
    assert sum(c.originals[0].endswith(".gif") for c in candidates) == 4


@pytest.mark.parametrize("heading", HEADINGS)
def test_without_the_container_the_heading_still_ends_the_board(driver, page, tmp_path, board_ids, heading):
    url = page_with_recommendations(driver, page, tmp_path, heading)
    drifted = Selectors(board_container='[data-test-id="renamed-by-pinterest"]', recommendations="")
    result = scroll_and_collect(driver, url, QUICK, drifted)
    assert [pin.pin_id for pin in result.pins] == board_ids
    assert (result.board_boundary, result.end_signal, result.end_heading) == ("heading_fallback", "heading", heading)


def test_without_either_signal_the_recommendations_would_be_collected(driver, page, tmp_path, board_ids):
    # As the scraper before issue 18 did on this page: no container, and "More ideas" matched only
    # exactly, so no heading here ended the board. The test page really holds the 12 extra pins.
    url = page_with_recommendations(driver, page, tmp_path, "More ideas for this board")
    blind = Selectors(board_container="", recommendations="", end_of_board_headings=(), end_of_board_text="")
    result = scroll_and_collect(driver, url, ScrollSettings(max_iterations=8, persistence=2, scroll_pause_s=0.2), blind)
    assert len(result.pins) == 18 + 12 and result.stopped_because == "no_new_pins"
