"""Live server + headless Chromium (Debian's, never a downloaded build) for browser tests."""
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def browser_or_skip():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401  (only checks it is installed)
    except ImportError:
        missing.append("python playwright")
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing:
        if os.environ.get("TENANTPILOT_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but missing: {', '.join(missing)}")
        pytest.skip(f"no browser: missing {', '.join(missing)}")


@contextmanager
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # fresh temporary profile
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base: str, plane: str, email: str, password: str) -> None:
    """Sign in through a plane's real login form."""
    page.goto(f"{base}/{plane}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")  # (signed in already, the top bar has a Sign out button)
