"""Headless Chromium as the browser tests and the docs' screenshots (docs/gen/screenshots.py) run
it: Debian's `chromium`, no sandbox (a container runs it as root), and nothing fetched on its own
(updates, sync, background requests), so that what a page draws is what it holds."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
