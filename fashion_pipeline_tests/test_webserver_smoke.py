"""The Dagster UI starts on a loopback port and its asset graph lists ``deepfashion_coco``.

Checked the way a user sees it: headless Chromium through Selenium.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fashion_pipeline.common.browser import chrome_driver

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.fixture
def webserver(tmp_path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "FASHION_PIPELINE_DATA": str(tmp_path / "data")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver_bin), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{base_url}/server_info", process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_asset_graph_lists_deepfashion_coco(webserver):
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome_driver()
    try:
        driver.get(f"{webserver}/assets")
        WebDriverWait(driver, 90).until(lambda d: "deepfashion_coco" in d.page_source)
        assert "deepfashion_coco" in driver.page_source
    finally:
        driver.quit()
