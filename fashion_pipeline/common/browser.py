"""Headless Debian Chromium for Selenium, with nothing downloaded at run time.

The chromedriver is given explicitly, so Selenium Manager never fetches a driver or browser.
"""
from __future__ import annotations

import shutil

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_executable(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        f"none of {names} is on PATH; install Debian's chromium and chromium-driver "
        "(`make install` does: apt-get install -y chromium chromium-driver)"
    )


def chrome_driver(window_size: str = "1280,2000", page_load_strategy: str = "eager", extra_args=()):
    """Start headless Chromium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find_executable("chromium", "chromium-browser")
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window_size}", *extra_args):
        options.add_argument(flag)
    options.page_load_strategy = page_load_strategy
    return webdriver.Chrome(service=Service(find_executable("chromedriver")), options=options)
