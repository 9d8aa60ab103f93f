"""Headless Chromium, driven by selenium: for the demo and the operator console's browser test.

Debian's packages chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); `.ci/run`
installs them when it runs as root. The flags keep Chromium off the network it would otherwise call
home to, and out of the sandbox a container lacks."""

from __future__ import annotations

import shutil
from typing import Any

ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None when this machine lacks either."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def chromium() -> Any:
    """A headless Chromium under selenium's control; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = binaries()
    if found is None:
        raise RuntimeError("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ARGUMENTS:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(found[1]), options=options)
