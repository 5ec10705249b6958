"""Headless Chromium for looking at a page as a person would: Debian's ``chromium``, driven by Playwright.

Playwright (PyPI) brings its own driver but no browser here: ``playwright install`` would download
one, which this project never does. It launches the system's ``chromium`` (``apt-get install
chromium``; ``make tools`` does it when apt is usable) by executable path, with a fresh profile
and the flags that keep Chromium off the network (no component updates, sync, QUIC or background
fetches). When either is missing, :func:`unavailable_reason` says which and how to get it, so a
test can skip with that reason and the demo can print it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "PageVisit", "chromium_path", "open_page", "screenshot", "unavailable_reason"]

# Chromium's own network activity off; --no-sandbox because CI runs as root in a container.
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--no-default-browser-check", "--metrics-recording-only", "--hide-scrollbars",
)
_CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    """The system Chromium (Debian package ``chromium``), if installed."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable_reason() -> str | None:
    """Why a headless browser cannot run here (and how to fix it), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (requirements-dev.txt; `make setup`)"
    if chromium_path() is None:
        return "Chromium is not installed (`apt-get install -y chromium` as root; `make tools` does it when it can)"
    return None


@dataclass
class PageVisit:
    """One page load: every request the page made, what the console said, and the page itself."""

    url: str
    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@contextmanager
def open_page(url: str) -> Iterator[PageVisit]:
    """Load ``url`` in headless Chromium (1400 x 900) and yield the visit (Playwright's ``Page`` in ``visit.page``).

    Every other request (a stylesheet, font, image, script, favicon) is aborted and listed in
    ``visit.blocked``: the page must stand on its own.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError(unavailable_reason() or "Chromium is not installed")
    with sync_playwright() as pw:
        # Playwright gives every launch a new, empty profile (user data directory) of its own.
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
            page = context.new_page()
            visit = PageVisit(url, page)
            page.on("request", lambda request: visit.requests.append(request.url))
            page.on("console", lambda message: visit.console.append(f"{message.type}: {message.text}"))

            def route(route: Any) -> None:
                if route.request.url != url:
                    visit.blocked.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            yield visit
        finally:
            browser.close()


def screenshot(url: str, path: Path) -> Path:
    """A full-page PNG of ``url`` at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_page(url) as visit:
        visit.page.screenshot(path=str(path), full_page=True)
    return path
