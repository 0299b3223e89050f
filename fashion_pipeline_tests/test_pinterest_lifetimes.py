"""The Chromium pool and the embedded site live as long as a run, or as long as an owner that keeps them.

Module globals closed only by ``atexit`` outlived runs in long-lived processes and were still shutting
down when ``make dev`` was stopped. Now ``PinterestScraper``'s teardown closes them at the run's end,
and ``kept_between_runs()`` (what ``make demo`` uses for its 20 brands) keeps them until it ends.
"""
import dagster as dg
import pytest

from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.pinterest import assets as pinterest_assets
from fashion_pipeline.pinterest.assets import PinterestScraper, kept_between_runs, pinterest_images

CONFIG = {"ops": {"pinterest_images": {"config": {"embedded_pins_per_board": 6, "scroll_pause_s": 0.2,
                                                  "persistence": 2, "thumbnails": 2}}}}


def _scrape(tmp_path, brand: str, instance) -> None:
    result = dg.materialize([pinterest_images], partition_key=brand, instance=instance, run_config=CONFIG,
                            resources={"data_root": DataRoot(root=str(tmp_path)), "pinterest": PinterestScraper()})
    assert result.success


def _kept() -> tuple[list, list]:
    return list(pinterest_assets._kept_browsers._kept.values()), list(pinterest_assets._sites.values())


@pytest.mark.slow
def test_a_run_closes_its_browser_and_site_and_an_owner_keeps_them_across_runs(tmp_path):
    pinterest_assets.release_sessions()
    instance = dg.DagsterInstance.ephemeral()
    _scrape(tmp_path, "hermes", instance)
    assert _kept() == ([], [])  # the run's end closed them

    with kept_between_runs():
        _scrape(tmp_path, "hermes", instance)
        (driver,), (site,) = _kept()
        chromedriver = driver.service.process
        _scrape(tmp_path, "prada", instance)
        (again,), (same_site,) = _kept()
        assert again is driver and same_site is site  # reused: one Chromium and one site for both brands
        assert chromedriver.poll() is None
    assert _kept() == ([], [])
    assert chromedriver.wait(timeout=10) is not None  # chromedriver exited with its owner
    assert site._server is None  # the site's HTTP server stopped
