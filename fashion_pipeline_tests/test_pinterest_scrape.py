"""The Selenium scraper against the embedded site, in Debian's headless Chromium."""
from __future__ import annotations

import logging

import pytest

from fashion_pipeline.pinterest.scraper import LoginFailed, ScrollSettings, Selectors, login, scroll_and_collect, start_browser
from fashion_pipeline.pinterest.site import EmbeddedPinterestSite, FaultConfig, SiteMix
from fashion_pipeline.pinterest.site.catalog import RECOMMENDATION_HEADINGS, THESIS_BRANDS
from fashion_pipeline.pinterest.urls import parse_srcset

pytestmark = pytest.mark.slow
QUICK = ScrollSettings(max_iterations=60, persistence=3, scroll_pause_s=0.3)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with EmbeddedPinterestSite(tmp_path_factory.mktemp("site"), ["Prada", "Gucci"], pins_per_board=90, seed=1) as running:
        yield running


@pytest.fixture(scope="module")
def driver():
    browser = start_browser()
    yield browser
    browser.quit()


class CountingDriver:
    """Counts script calls, to hold the scraper to one per scroll round."""

    def __init__(self, driver):
        self._driver, self.script_calls = driver, 0

    def execute_async_script(self, *args):
        self.script_calls += 1
        return self._driver.execute_async_script(*args)

    def execute_script(self, *args):
        self.script_calls += 1
        return self._driver.execute_script(*args)

    def __getattr__(self, name):
        return getattr(self._driver, name)


def test_collects_exactly_the_board_pins_and_stops_at_more_ideas(site, driver):
    site.set_faults(None)
    counting = CountingDriver(driver)
    result = scroll_and_collect(counting, site.board_url("Prada"), QUICK)
    assert result.stopped_because == "end_of_board" and result.reached_end_of_board
    assert [pin.pin_id for pin in result.pins] == site.board_pin_ids("Prada")  # page order, nothing after the header
    assert result.rounds > 1, "a 90-pin board should need scrolling"
    assert counting.script_calls == result.rounds
    for pin in result.pins:
        assert pin.page_url == site.pin_url(pin.pin_id)
        assert pin.src.startswith(site.base_url + "/i/236x/")
        assert [url.split("/")[4] for url in parse_srcset(pin.srcset)] == ["236x", "474x", "736x", "originals"]
    assert result.board_boundary == "board_container" and result.end_signal in ("heading", "container")


@pytest.fixture(scope="module")
def thesis_site(tmp_path_factory):
    """The 20 thesis boards: between them they draw every recommendations heading (both languages)."""
    mix = SiteMix(video_rate=0.15)
    with EmbeddedPinterestSite(tmp_path_factory.mktemp("thesis"), THESIS_BRANDS, pins_per_board=20, seed=0, mix=mix) as running:
        yield running


def brand_per_heading(site) -> dict[tuple[str, str], str]:
    chosen = {}
    for board in site.catalog.boards.values():
        chosen.setdefault(site.catalog.recommendations_heading(board.slug), board.brand)
    assert set(chosen) == set(RECOMMENDATION_HEADINGS)
    return chosen


@pytest.mark.parametrize("heading", RECOMMENDATION_HEADINGS, ids=lambda h: f"{h[0]}-{h[1][:18]}")
def test_recommendations_are_never_collected_under_any_heading(thesis_site, driver, heading):
    brand = brand_per_heading(thesis_site)[heading]
    result = scroll_and_collect(driver, thesis_site.board_url(brand), QUICK)
    assert [pin.pin_id for pin in result.pins] == thesis_site.board_pin_ids(brand)
    assert result.stopped_because == "end_of_board" and result.board_boundary == "board_container"
    assert result.end_signal == "heading" and result.end_heading == heading[1]
    assert driver.execute_script("return document.documentElement.lang") == heading[0]


@pytest.mark.parametrize("heading", RECOMMENDATION_HEADINGS, ids=lambda h: f"{h[0]}-{h[1][:18]}")
def test_without_a_board_container_the_heading_alone_bounds_the_board(thesis_site, driver, heading):
    # The container's test id "drifted" and no section selector matches: only the heading is left.
    drifted = Selectors(board_container='[data-test-id="renamed-by-pinterest"]', recommendations="", end_of_board="")
    brand = brand_per_heading(thesis_site)[heading]
    result = scroll_and_collect(driver, thesis_site.board_url(brand), QUICK, drifted)
    assert [pin.pin_id for pin in result.pins] == thesis_site.board_pin_ids(brand)
    assert (result.board_boundary, result.end_signal, result.end_heading) == ("heading_fallback", "heading", heading[1])


def test_the_board_container_alone_bounds_the_board_whatever_the_heading_says(thesis_site, driver):
    # No heading phrase known (a locale nobody listed): the container still keeps recommendations out.
    structure_only = Selectors(recommendations="", end_of_board="", end_of_board_text="", end_of_board_headings=())
    brand = brand_per_heading(thesis_site)[RECOMMENDATION_HEADINGS[-1]]
    result = scroll_and_collect(driver, thesis_site.board_url(brand), QUICK, structure_only)
    assert [pin.pin_id for pin in result.pins] == thesis_site.board_pin_ids(brand)
    assert (result.board_boundary, result.end_signal) == ("board_container", "container")
    assert result.pins_outside_board > 0  # recommended pins had loaded, and were left out


def test_video_pins_are_marked_from_their_video_element(thesis_site, driver):
    brand = next(b for b in THESIS_BRANDS if any(p.image.is_video for p in thesis_site.catalog.board_for_brand(b).pins))
    result = scroll_and_collect(driver, thesis_site.board_url(brand), QUICK)
    videos = {p.pin_id for p in thesis_site.catalog.board_for_brand(brand).pins if p.image.is_video}
    assert videos and {pin.pin_id for pin in result.pins if pin.media == "video"} == videos


def test_the_more_ideas_heading_text_ends_the_board_when_the_selector_drifts(site, driver):
    drifted = Selectors(end_of_board='div[data-test-id="renamed-by-pinterest"]', board_container="")
    result = scroll_and_collect(driver, site.board_url("Gucci"), QUICK, drifted)
    assert result.stopped_because == "end_of_board" and result.board_boundary == "heading_fallback"
    assert [pin.pin_id for pin in result.pins] == site.board_pin_ids("Gucci")


def test_an_endless_board_is_cut_by_max_iterations(site, driver):
    site.set_faults(FaultConfig(endless_feed=True))
    try:
        result = scroll_and_collect(driver, site.board_url("Gucci"), ScrollSettings(max_iterations=6, persistence=3, scroll_pause_s=0.3))
    finally:
        site.set_faults(None)
    assert result.stopped_because == "max_iterations" and result.rounds == 6
    assert len(result.pins) > 0


def test_gives_up_after_persistence_rounds_without_new_pins(site, driver):
    # Every page answers 500: nothing ever loads, so only persistence ends the scroll.
    site.set_faults(FaultConfig(error_500_rate=1.0, include_pages=True, transient_attempts=10**6))
    try:
        result = scroll_and_collect(driver, site.board_url("Gucci"), ScrollSettings(max_iterations=50, persistence=4, scroll_pause_s=0.2))
    finally:
        site.set_faults(None)
    assert result.stopped_because == "no_new_pins" and result.rounds == 4 and result.pins == []


def test_max_pins_caps_the_collection(site, driver):
    result = scroll_and_collect(driver, site.board_url("Gucci"), ScrollSettings(max_pins=10, scroll_pause_s=0.3))
    assert len(result.pins) == 10
    assert result.stopped_because in ("max_pins", "end_of_board")


def test_login_opens_a_session_that_later_requests_carry(site, driver, caplog):
    caplog.set_level(logging.DEBUG)  # selenium would log typed text at DEBUG
    before = site.stats()
    login(driver, site.base_url, "someone@example.org", "not-a-real-password")
    scroll_and_collect(driver, site.board_url("Prada"), QUICK)
    after = site.stats()
    assert after["logins"] == before["logins"] + 1
    assert after["session_requests"] > before["session_requests"]
    assert "selenium" in caplog.text and "not-a-real-password" not in caplog.text


def test_login_failure_is_clear_and_never_shows_the_password(site, driver):
    with pytest.raises(LoginFailed) as raised:
        login(driver, site.base_url + "/no-such-place", "someone@example.org", "hunter2-secret", timeout_s=2)
    assert "hunter2-secret" not in str(raised.value) and "/login/" in str(raised.value)
