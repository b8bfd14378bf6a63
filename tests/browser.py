"""A real headless browser for the page's tests: Debian's ``chromium`` driven by Selenium through
the system ``chromedriver`` (named explicitly, so Selenium never fetches a driver). `chrome()`
skips the calling test, saying why, where either is missing or the browser does not start."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Headless, no sandbox (containers), and no background traffic: on a closed network the
# browser's own update/sync/QUIC connections would otherwise pile up.
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
INSTALL = "apt-get install chromium chromium-driver; pip install selenium"


def _which(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def chrome(download_dir: Path) -> Any:
    """A headless Chromium saving downloads to ``download_dir`` (skips the test if none runs)."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(f"selenium is not installed ({INSTALL})")
    browser = _which("chromium", "chromium-browser", "google-chrome")
    driver = _which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(f"no {'chromium' if browser is None else 'chromedriver'} on PATH ({INSTALL})")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never go online
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='judgelm-chromium-')}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
    )
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as e:
        pytest.skip(f"chromium did not start: {e.msg or e}".splitlines()[0])
    session.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return session


class Page:
    """The judge page in ``driver``: elements by ``data-testid``, waits, screenshots."""

    def __init__(self, driver: Any, url: str, shots: Path):
        self.driver, self.url, self.shots = driver, url, shots
        shots.mkdir(parents=True, exist_ok=True)

    def open(self) -> Page:
        self.driver.get(self.url + "/")
        self.wait(lambda: self.driver.find_element("tag name", "body").get_attribute("data-ready") == "true")
        return self

    def __call__(self, testid: str) -> Any:
        return self.driver.find_element("css selector", f'[data-testid="{testid}"]')

    def all(self, testid: str) -> list[Any]:
        return self.driver.find_elements("css selector", f'[data-testid="{testid}"]')

    def value(self, testid: str) -> str | None:
        return self(testid).get_attribute("data-value")

    def text(self, testid: str) -> str:
        return self(testid).get_attribute("textContent")

    def type(self, testid: str, text: str) -> None:
        box = self(testid)
        box.clear()
        box.send_keys(text)

    def select(self, testid: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self(testid)).select_by_value(value)

    def wait(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                errors = [e.get_attribute("textContent") for e in self.all("error") + self.all("batch-error")]
                raise AssertionError(f"the page did not get there in {timeout} s (errors shown: {errors})")
            time.sleep(0.05)
        return result

    def wait_state(self, testid: str, *states: str, timeout: float = 60.0) -> str:
        return self.wait(lambda: (s := self(testid).get_attribute("data-state")) in states and s, timeout)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
