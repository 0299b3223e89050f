"""Dagster layer of the Pinterest stage: ``pinterest_images`` (one partition per brand), its job,
the weekly re-scrape schedule, and the ``pinterest`` scraper resource (embedded site or live)."""

import atexit
import contextlib
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from fashion_pipeline.common import lineage
from fashion_pipeline.common.fingerprint import combine
from fashion_pipeline.common.render import grid_markdown
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.pinterest.brands import Brand, brand_by_slug, load_brands
from fashion_pipeline.pinterest.download import (
    ASSET_NAME, FAILURE_REASONS, BrandStore, DownloadReport, DownloadSettings, PinOutcome, download_pins,
)
from fashion_pipeline.pinterest.scraper import KeptBrowsers, ScrapeResult, ScrollSettings, Selectors, login, scroll_and_collect, start_browser

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.pinterest.com"
SCRAPE_CRON_ENV_VAR = "FASHION_PIPELINE_SCRAPE_CRON"
MODE_ENV_VAR = "FASHION_PIPELINE_PINTEREST_MODE"
DEFAULT_SCRAPE_CRON = "0 3 * * 1"  # Mondays 03:00: boards grow slowly, weekly is polite enough
# The embedded site accepts any account; these only exercise the same login code path.
EMBEDDED_DEMO_LOGIN = ("demo@fashion-pipeline.local", "embedded-site")

# Partition keys come from the brands file when the code location loads; edit the file, reload.
BRANDS: list[Brand] = load_brands()
BRAND_PARTITIONS = dg.StaticPartitionsDefinition([brand.slug for brand in BRANDS])


# ---- embedded site: one per process and configuration, shared by consecutive runs -------------
_sites: dict[tuple, object] = {}
_sites_lock = threading.Lock()


def _embedded_site(root: Path, pins_per_board: int, seed: int, latency_s: float):
    from fashion_pipeline.pinterest.site import EmbeddedPinterestSite

    key = (str(root), pins_per_board, seed, latency_s)
    with _sites_lock:
        if key not in _sites:
            # Every brand of the file, not only this run's: cross-brand duplicates stay the same.
            site = EmbeddedPinterestSite(
                root, [brand.name for brand in load_brands()], pins_per_board=pins_per_board, seed=seed, latency_s=latency_s
            )
            site.start()
            atexit.register(site.stop)
            _sites[key] = site
        return _sites[key]


_kept_browsers = KeptBrowsers()
# Set while an owner keeps browsers and sites open across runs (``make demo``: one Chromium and one
# site for every brand); otherwise a run's end closes them (PinterestScraper.teardown_after_execution).
_kept_between_runs = threading.Event()


def release_sessions() -> None:
    """Quit the kept browsers and stop the embedded sites of this process, now (not at interpreter exit)."""
    _kept_browsers.quit_all()
    with _sites_lock:
        sites = list(_sites.values())
        _sites.clear()
    for site in sites:
        site.stop()


@contextlib.contextmanager
def kept_between_runs() -> Iterator[None]:
    """Keep browsers and embedded sites open across the runs inside; close them when it ends."""
    _kept_between_runs.set()
    try:
        yield
    finally:
        _kept_between_runs.clear()
        release_sessions()


@dataclass
class BrowseSession:
    """An open browser (logged in or not) plus where each brand's pins are."""

    driver: object
    base_url: str
    logged_in: bool
    embedded_site: object | None
    selectors: Selectors

    def source_url(self, brand: Brand) -> str:
        if self.embedded_site is not None:
            return self.embedded_site.board_url(brand.name)
        return brand.source_url(self.base_url)

    def scrape(self, brand: Brand, settings: ScrollSettings) -> ScrapeResult:
        return scroll_and_collect(self.driver, self.source_url(brand), settings, self.selectors)

    def image_hosts(self) -> tuple[str, ...]:
        """Hosts the downloader may fetch from besides the configured ones: the embedded site's loopback address."""
        if self.embedded_site is None:
            return ()
        from urllib.parse import urlsplit

        return (urlsplit(self.embedded_site.base_url).hostname,)


class PinterestScraper(dg.ConfigurableResource):
    """Selenium on headless Debian Chromium, against the embedded local site or pinterest.com.

    Credentials are read from the environment at run time (``PINTEREST_EMAIL`` and
    ``PINTEREST_PASSWORD`` by default), never from config, so they never reach logs or run config.
    """

    mode: str = Field(default="embedded", description="'embedded' (local site, started on demand) or 'live'")
    base_url: Optional[str] = Field(default=None, description="live mode: defaults to $PINTEREST_BASE_URL, then pinterest.com")
    login: str = Field(default="auto", description="'auto' (log in when credentials are set), 'always' or 'never'")
    email_env_var: str = "PINTEREST_EMAIL"
    password_env_var: str = "PINTEREST_PASSWORD"
    scroll_pause_s: Optional[float] = Field(default=None, description="longest wait after a scroll; default 0.3 s embedded, 2 s live")
    embedded_seed: int = 0
    embedded_latency_s: float = Field(default=0.0, description="embedded mode: added latency per response (realism)")
    reuse_browser: bool = Field(
        default=True, description="keep Chromium open (and logged in) for the next run in the same process"
    )
    selector_pin: str = Selectors.pin
    selector_end_of_board: str = Selectors.end_of_board
    end_of_board_text: str = Field(default=Selectors.end_of_board_text, description="heading that ends a board's own pins")
    selector_login_email: str = Selectors.login_email
    selector_login_password: str = Selectors.login_password
    selector_login_submit: str = Selectors.login_submit

    def default_scroll_pause_s(self) -> float:
        if self.scroll_pause_s is not None:
            return self.scroll_pause_s
        return 0.3 if self.mode == "embedded" else 2.0

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # The run's (or its step process's) end is the browsers' and sites' end, unless an owner keeps them.
        if not _kept_between_runs.is_set():
            release_sessions()

    def _selectors(self) -> Selectors:
        return Selectors(
            pin=self.selector_pin, end_of_board=self.selector_end_of_board, end_of_board_text=self.end_of_board_text,
            login_email=self.selector_login_email,
            login_password=self.selector_login_password, login_submit=self.selector_login_submit,
        )

    def _credentials(self) -> tuple[str, str] | None:
        email, password = os.environ.get(self.email_env_var), os.environ.get(self.password_env_var)
        if email and password:
            return email, password
        if self.mode == "embedded":
            return EMBEDDED_DEMO_LOGIN
        if self.login == "always":
            raise RuntimeError(f"login='always' but ${self.email_env_var} / ${self.password_env_var} are not both set")
        return None

    @contextlib.contextmanager
    def browse(self, data_root: Path, pins_per_board: int) -> Iterator[BrowseSession]:
        if self.mode not in ("embedded", "live"):
            raise ValueError(f"pinterest resource: mode must be 'embedded' or 'live', not {self.mode!r}")
        site = None
        if self.mode == "embedded":
            site = _embedded_site(data_root / "pinterest_site", pins_per_board, self.embedded_seed, self.embedded_latency_s)
            base_url = site.base_url
        else:
            base_url = self.base_url or os.environ.get("PINTEREST_BASE_URL") or DEFAULT_BASE_URL
        credentials = self._credentials() if self.login != "never" else None
        key = (base_url, credentials[0] if credentials else None)  # the account, never the password
        driver = _kept_browsers.take(key) if self.reuse_browser else None
        if driver is None:
            driver = start_browser()
            if credentials:
                try:
                    login(driver, base_url, *credentials, selectors=self._selectors())
                except BaseException:
                    driver.quit()
                    raise
        finished = False
        try:
            yield BrowseSession(driver, base_url, credentials is not None, site, self._selectors())
            finished = True
        finally:
            if finished and self.reuse_browser:
                _kept_browsers.give_back(key, driver)
            else:
                driver.quit()


class PinterestImagesConfig(dg.Config):
    """Scrape and download settings; the thesis scrolled with a max-iterations cap and persistence."""

    max_iterations: int = Field(default=300, description="scroll rounds at most")
    persistence: int = Field(default=5, description="stop after this many rounds without a new pin")
    scroll_pause_s: Optional[float] = Field(default=None, description="override the resource's wait after a scroll")
    max_pins: int = Field(default=0, description="stop collecting after this many pins; 0 = the whole board")
    embedded_pins_per_board: int = Field(default=300, description="embedded mode: pins on each brand board (thesis: 300-700)")
    max_workers: int = Field(default=8, description="concurrent downloads")
    requests_per_second: float = Field(default=10.0, description="global politeness limit; <= 0 disables it")
    max_attempts: int = Field(default=5, description="tries per URL on 429 / 5xx / timeout")
    backoff_base_s: float = 0.5
    timeout_s: float = 20.0
    max_megabytes: float = 30.0
    max_megapixels: float = 60.0
    thumbnails: int = Field(default=16, description="images in the metadata grid")
    image_hosts: list[str] = Field(default=["pinimg.com"], description="hosts images may be downloaded from (and "
                                   "redirected to); subdomains included; embedded mode adds the site's loopback address")
    min_pins_ratio: float = Field(default=0.5, ge=0.0, le=1.0,
                                  description="scrape_health fails when a board yields fewer pins than this share of "
                                              "its last healthy scrape (and always when it yields none)")

    def scroll_settings(self, default_pause_s: float) -> ScrollSettings:
        pause = self.scroll_pause_s if self.scroll_pause_s is not None else default_pause_s
        return ScrollSettings(self.max_iterations, self.persistence, pause, max_pins=self.max_pins)

    def download_settings(self, extra_hosts: tuple[str, ...] = ()) -> DownloadSettings:
        return DownloadSettings(
            max_workers=self.max_workers, requests_per_second=self.requests_per_second,
            max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s, timeout_s=self.timeout_s,
            max_bytes=int(self.max_megabytes * 1024 * 1024), max_pixels=int(self.max_megapixels * 1_000_000),
            allowed_hosts=tuple(dict.fromkeys([*self.image_hosts, *extra_hosts])),
        )


def _progress_logger(context: dg.AssetExecutionContext, total: int):
    done = {"n": 0}

    def on_outcome(outcome: PinOutcome) -> None:
        done["n"] += 1
        if outcome.reason:
            context.log.debug(f"pin {outcome.pin.pin_id}: {outcome.detail}")
        if done["n"] % 50 == 0 or done["n"] == total:
            context.log.info(f"{done['n']}/{total} pins handled")

    return on_outcome


def verify_manifest(store: BrandStore) -> tuple[bool, dict]:
    """Every row points at an existing file whose name and bytes match its sha256; ids unique."""
    frame = store.load_manifest()
    duplicate_ids = int(frame["pin_id"].duplicated().sum())
    missing = mismatched = 0
    for rel, digest in zip(frame["file_path"], frame["sha256"]):
        path = store.data_root / rel
        if not path.exists():
            missing += 1
        elif path.stem != digest or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            mismatched += 1
    passed = len(frame) > 0 and duplicate_ids == missing == mismatched == 0
    return passed, {"rows": len(frame), "duplicate_pin_ids": duplicate_ids, "missing_files": missing, "hash_mismatches": mismatched}


def scrape_health(pins_found: int, previous_pins_found: Optional[int], min_ratio: float) -> tuple[bool, str]:
    """A board that yields nothing, or far fewer pins than its last healthy scrape (``previous_pins_found``: the
    last one whose scrape_health passed), points at a broken selector or a login wall."""
    if pins_found == 0:
        return False, "the board yielded 0 pins (a changed selector, a login wall, or a removed board?)"
    if previous_pins_found and pins_found < min_ratio * previous_pins_found:
        return False, (f"the board yielded {pins_found} pins, fewer than {min_ratio:.0%} of the "
                       f"{previous_pins_found} of its last healthy scrape")
    return True, f"{pins_found} pins" + (f" (last healthy scrape: {previous_pins_found})" if previous_pins_found else "")


def manifest_version(store: BrandStore) -> dg.DataVersion:
    """The set of image contents the brand holds; a re-scrape that adds nothing keeps the version."""
    frame = store.load_manifest() if store.manifest_path.exists() else pd.DataFrame({"sha256": []})
    return dg.DataVersion(combine(sorted(frame["sha256"].astype(str))))


def _thumbnails(report: DownloadReport, store: BrandStore, count: int) -> str:
    files = report.new_files[:count]
    if len(files) < count and store.manifest_path.exists():
        files += [f for f in store.load_manifest()["file_path"].head(count) if f not in files][: count - len(files)]
    return grid_markdown([store.data_root / rel for rel in files], ncols=8, alt="pins")


def _metadata(scrape: ScrapeResult, report: DownloadReport, logged_in: bool, started: float, grid: str, store: BrandStore) -> dict:
    metadata = {
        "source_url": scrape.url,
        "pins_found": len(scrape.pins),
        "files_downloaded": report.files_downloaded,
        "files_already_present": report.files_already_present,
        "failures_total": sum(report.failures.values()),
        **{f"failures_{reason}": report.failures.get(reason, 0) for reason in FAILURE_REASONS},
        "manifest_rows": report.manifest_rows,
        "scroll_rounds": scrape.rounds,
        "stopped_because": scrape.stopped_because,
        "reached_end_of_board": scrape.reached_end_of_board,
        # How the board was bounded: its feed container, or only its end heading (no container found).
        "board_boundary": scrape.board_boundary,
        "end_signal": scrape.end_signal,
        "end_heading": scrape.end_heading,
        "pins_outside_board": scrape.pins_outside_board,
        "logged_in": logged_in,
        "scrape_seconds": round(scrape.duration_s, 2),
        "download_seconds": round(report.duration_s, 2),
        "duration_seconds": round(time.monotonic() - started, 2),
        "manifest_path": dg.MetadataValue.path(str(store.manifest_path.relative_to(store.data_root))),
        "thumbnails": dg.MetadataValue.md(grid),
    }
    return metadata


SCRAPE_CHECKS = ("manifest_consistent", "scrape_health")
# Transient failures (a browser crash, a timeout) are worth a retry; downloads already stored are kept.
SCRAPE_RETRY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.asset(
    partitions_def=BRAND_PARTITIONS,
    group_name="pinterest",
    kinds={"selenium", "parquet"},
    # The rate limit is per run; one scrape at a time keeps a 20-brand backfill polite overall
    # (and one Chromium at a time on a small machine). dagster.yaml sets the pool limit.
    pool="pinterest",
    code_version="2",
    retry_policy=SCRAPE_RETRY,
    check_specs=[
        lineage.partitioned_check("manifest_consistent", ASSET_NAME, BRAND_PARTITIONS,
                                  "unique pin ids; every file exists and matches its sha256"),
        lineage.partitioned_check("scrape_health", ASSET_NAME, BRAND_PARTITIONS,
                                  "the board yielded pins, and not far fewer than its last healthy scrape (the last "
                                  "whose scrape_health passed)"),
    ],
    description="Runway pins of one brand: scraped with Selenium, originals downloaded, Parquet manifest.",
)
def pinterest_images(
    context: dg.AssetExecutionContext, config: PinterestImagesConfig, data_root: DataRoot, pinterest: PinterestScraper
) -> dg.MaterializeResult:
    started = time.monotonic()
    brand = brand_by_slug(context.partition_key)
    # The baseline is the last scrape whose health check passed: after a login wall (12 pins against 300),
    # the next week's 12 are compared with the 300 again, not with the failed 12.
    healthy_before = lineage.last_passed_check(context.instance, ASSET_NAME, "scrape_health", brand.slug)
    with pinterest.browse(data_root.path, config.embedded_pins_per_board) as session:
        context.log.info(f"{brand.name}: scrolling {session.source_url(brand)} (logged in: {session.logged_in})")
        scrape = session.scrape(brand, config.scroll_settings(pinterest.default_scroll_pause_s()))
    context.log.info(f"{brand.name}: {len(scrape.pins)} pins ({scrape.stopped_because}); downloading")
    report = download_pins(
        scrape.pins, brand.slug, data_root.path, config.download_settings(session.image_hosts()),
        on_outcome=_progress_logger(context, len(scrape.pins))
    )
    store = BrandStore(data_root.path, brand.slug)
    consistent, check_metadata = verify_manifest(store)
    previous_pins = healthy_before.get("pins_found") if healthy_before else None
    healthy, health_reason = scrape_health(len(scrape.pins), previous_pins, config.min_pins_ratio)
    if not healthy:
        context.log.error(f"{brand.name}: scrape_health failed: {health_reason}; the brand's earlier rows are kept")
    grid = _thumbnails(report, store, config.thumbnails)
    brand_metadata = {"brand": brand.slug}
    return dg.MaterializeResult(
        metadata=_metadata(scrape, report, session.logged_in, started, grid, store),
        data_version=manifest_version(store),
        check_results=[
            dg.AssetCheckResult(check_name="manifest_consistent", passed=consistent,
                                metadata={**brand_metadata, **check_metadata}),
            dg.AssetCheckResult(check_name="scrape_health", passed=healthy, metadata={
                **brand_metadata, "pins_found": len(scrape.pins), "previous_pins_found": previous_pins or 0,
                "min_pins_ratio": config.min_pins_ratio, "reason": health_reason}),
        ],
    )


pinterest_scrape_job = dg.define_asset_job(
    "pinterest_scrape_job",
    selection=[pinterest_images],
    description="Scrape one brand (pick a partition in the Launchpad) or all of them (backfill / schedule).",
)


@dg.schedule(
    name="pinterest_weekly_rescrape",
    job=pinterest_scrape_job,
    cron_schedule=os.environ.get(SCRAPE_CRON_ENV_VAR, DEFAULT_SCRAPE_CRON),
    # Embedded mode (the default) scrapes the local demo site: on, so the daemon re-scrapes and automation
    # follows. Live mode scrapes pinterest.com: off until a user turns it on, a decision and not a default.
    default_status=(dg.DefaultScheduleStatus.RUNNING if os.environ.get(MODE_ENV_VAR, "embedded") == "embedded"
                    else dg.DefaultScheduleStatus.STOPPED),
    description=f"Re-scrape every brand of the brands file, one run per brand; cron from ${SCRAPE_CRON_ENV_VAR} "
                f"(default '{DEFAULT_SCRAPE_CRON}'). The cheap assets downstream follow by automation.",
)
def pinterest_rescrape_schedule(context: dg.ScheduleEvaluationContext):
    # A static partitions definition has no natural cadence, so each tick requests every brand.
    # A schedule's run keys are scoped to its tick: one run per brand per tick, even after a daemon restart.
    for slug in BRAND_PARTITIONS.get_partition_keys():
        yield dg.RunRequest(run_key=slug, partition_key=slug)


defs = dg.Definitions(assets=[pinterest_images], jobs=[pinterest_scrape_job], schedules=[pinterest_rescrape_schedule])


def resources() -> dict:
    return {"pinterest": PinterestScraper(mode=os.environ.get(MODE_ENV_VAR, "embedded"))}


# 20 runs of about 10 s: small boards, a short wait after each scroll.
DEMO_RUN_CONFIG = {
    "ops": {
        "pinterest_images": {
            "config": {
                "embedded_pins_per_board": 24, "scroll_pause_s": 0.25, "persistence": 3, "thumbnails": 16,
                # localhost: the politeness limit is for real servers
                "requests_per_second": 50.0,
            }
        }
    }
}
