"""Browser-test fixtures: the real dashboard on a free loopback port, Debian's Chromium, named steps.

The app is started exactly as ``make run`` starts it (``python -m streamlit run app/main.py`` from the
repository root) with a fresh ``CHURN_HOME`` on the local backend. It runs in its own session so it can
be stopped (or SIGKILLed, to simulate a crash) by its process group without touching pytest. Training
jobs and endpoints are detached into sessions of their own, so teardown also asks ``churn_core`` to
clean up endpoints and stop jobs, then sweeps any process that still names this test's state dir.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.e2e_support import (CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, VIEWPORT, AppServer, Steps,  # noqa: E402
                                   cleanup_state)


def pytest_collection_modifyitems(config, items):
    """Skip (do not fail) the browser tests on a machine without Chromium or Playwright."""
    here = Path(__file__).parent
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright python package is not installed"
    if missing:
        for item in items:
            if Path(str(item.fspath)).is_relative_to(here):
                item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture
def churn_home(home) -> Path:
    """conftest's fresh state directory, made now: the dashboard's, and the one ``platform`` (the test's own
    view of it, for checks behind the screen) connects to."""
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture
def app_server(churn_home, tmp_path) -> Iterator[AppServer]:
    server = AppServer(churn_home, tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        cleanup_state(churn_home)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)  # Playwright's 5 s default is too short on a busy machine

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    return folder


@pytest.fixture
def steps(shots) -> Iterator[Steps]:
    recorder = Steps(shots)
    yield recorder
    print(f"\nshots in {shots}\nstep timings: {recorder.report()}")
    if recorder.console:
        print("browser errors:\n" + "\n".join(recorder.browser_errors()))


@pytest.fixture
def page(context, steps):
    """One browser tab on the dashboard, screenshotted at every step."""
    tab = context.new_page()
    steps.watch("main", tab)
    return tab
