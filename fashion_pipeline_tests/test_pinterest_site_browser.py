"""The embedded site in headless Chromium: JS infinite scroll, lazy images, the More-ideas boundary, login."""
from __future__ import annotations

import shutil
import time

import pytest

from fashion_pipeline.pinterest.site import EmbeddedPinterestSite, FaultConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"),
                       reason="needs Debian's chromium and chromium-driver"),
]

PINS_SELECTOR = 'div[data-test-id="{feed}"] div[data-test-id="pin"]'
READ_FEEDS = """
const ids = sel => Array.from(document.querySelectorAll(sel), el => el.getAttribute('data-pin-id'));
return {
  board: ids('div[data-test-id="board-feed"] div[data-test-id="pin"]'),
  more: ids('div[data-test-id="more-ideas-feed"] div[data-test-id="pin"]'),
  // The recommendations heading has no test id (its wording varies by board, as on Pinterest).
  boundary: !!document.querySelector('div.more-ideas-header h2'),
  heading: (document.querySelector('div.more-ideas-header h2') || {}).textContent || '',
  lang: document.documentElement.lang,
  // The board's container ends before the heading: the heading is not inside it.
  headingOutsideBoard: !document.querySelector('div[data-test-id="board-feed"] div.more-ideas-header'),
  srcsets: Array.from(document.querySelectorAll('div[data-test-id="pin"] img'), img => img.getAttribute('srcset')),
  // Pins that break the contract: link not /pin/<id>/, or src not the srcset's 1x URL.
  malformed: Array.from(document.querySelectorAll('div[data-test-id="pin"]')).filter(pin => {
    const link = pin.querySelector('a'), img = pin.querySelector('img');
    return !link || link.getAttribute('href') !== '/pin/' + pin.getAttribute('data-pin-id') + '/'
      || !img || img.getAttribute('srcset').split(' ')[0] !== img.getAttribute('src');
  }).length,
};
"""


@pytest.fixture(scope="module")
def driver():
    from fashion_pipeline.common.browser import chrome_driver

    browser = chrome_driver(window_size="1200,900")
    yield browser
    browser.quit()


def scroll_until(driver, done, rounds: int = 60) -> dict:
    """Scroll to the bottom until ``done(state)``; each round waits for the page's JS to fetch."""
    state = driver.execute_script(READ_FEEDS)
    for _ in range(rounds):
        if done(state):
            return state
        driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight);")
        time.sleep(0.4)
        state = driver.execute_script(READ_FEEDS)
    return state


def test_scrolling_loads_the_whole_board_then_the_more_ideas_boundary(driver, tmp_path):
    with EmbeddedPinterestSite(tmp_path, ["Prada", "Gucci"], pins_per_board=70, seed=1) as site:
        driver.get(site.board_url("Prada"))
        state = scroll_until(driver, lambda s: s["boundary"] and s["more"])
        board_ids = site.board_pin_ids("Prada")
        assert state["boundary"], "no More-ideas header after scrolling"
        assert state["board"] == board_ids  # every pin once, in board order, none after the boundary
        assert state["more"] and not set(state["more"]) & set(board_ids + site.board_pin_ids("Gucci"))
        assert all(s.count(" 1x") == s.count(" 2x") == s.count(" 3x") == s.count("/originals/") == s.count(" 4x") == 1
                   for s in state["srcsets"])  # the JS-built pins name the original too
        assert (state["lang"], state["heading"]) == site.catalog.recommendations_heading("prada")
        assert state["headingOutsideBoard"]
        assert state["malformed"] == 0
        assert site.stats()["requests"].get("feed 200", 0) >= 3  # pins 16..70 came from the JS feed

        # The More-ideas feed keeps growing as one scrolls: it never ends.
        before = len(state["more"])
        state = scroll_until(driver, lambda s: len(s["more"]) > before + 25)
        assert len(state["more"]) > before + 25
        # Lazy images: the browser fetched thumbnails, not every size of every pin.
        requests = [path for _, path, _ in site.request_log if path.startswith("/i/")]
        assert requests and all("/236x/" in path for path in requests)


def test_search_for_brand_runway_scrolls_like_the_board(driver, tmp_path):
    with EmbeddedPinterestSite(tmp_path, ["Chloé", "Prada"], pins_per_board=30, seed=2) as site:
        driver.get(site.search_url("Chloé runway"))
        state = scroll_until(driver, lambda s: s["boundary"])
        assert state["boundary"] and state["board"] == site.board_pin_ids("Chloé") and state["malformed"] == 0


def test_endless_board_never_shows_the_boundary(driver, tmp_path):
    with EmbeddedPinterestSite(tmp_path, ["Prada"], 20, faults=FaultConfig(endless_feed=True)) as site:
        driver.get(site.board_url("Prada"))
        state = scroll_until(driver, lambda s: len(s["board"]) >= 100, rounds=40)
        assert len(state["board"]) >= 100 and not state["boundary"]


def test_login_form_in_the_browser_sets_the_session(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with EmbeddedPinterestSite(tmp_path, ["Prada"], 5) as site:
        driver.get(site.base_url + "/login/")
        driver.find_element(By.CSS_SELECTOR, "input#email[name=id]").send_keys("model@example.com")
        password = driver.find_element(By.CSS_SELECTOR, "input#password[name=password]")
        password.send_keys("not-logged")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The click only starts the POST: navigating away at once could cancel it before the cookie is set.
        WebDriverWait(driver, 30).until(EC.staleness_of(password))
        driver.get(site.board_url("Prada"))
        assert driver.find_elements(By.CSS_SELECTOR, '[data-test-id="header-profile"]')
        assert site.session_seen and site.stats()["logins"] == 1
        driver.delete_all_cookies()
