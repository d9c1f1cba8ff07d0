from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def browser():
    """One Chromium per test, closed before the test database is flushed (Playwright's event
    loop must be gone by then, or Django refuses the flush as "async")."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _sync_orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls a test makes between
    # browser steps are still plain synchronous calls. Only for these tests, never globally.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(width: int = 1280, height: int = 860):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)  # two test passes share the machine (.ci/test-passes)
        violations: list[str] = []
        page.on(
            "console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None
        )
        page.csp_violations = violations
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shoot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")  # sticky header and sidebar belong at the top
        # caret="initial": the default hides carets with a style="" left on inputs, which htmx
        # would copy onto swapped-in fields (and CSP would report as an inline style).
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, caret="initial")

    return take


@pytest.fixture
def asgi_server(transactional_db, settings):
    """The portal as production serves it: uvicorn on portal.asgi (pages and the serial console's
    websockets), in a process of its own reading this test's database, like the worker fixture.
    Yields its base URL."""
    import socket
    import subprocess
    import sys
    import time

    from tests.conftest import worker_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    log = open(Path(settings.VAR_DIR) / "asgi.log", "w+")  # noqa: SIM115 — closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "portal.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
        ],
        cwd=root,
        env=worker_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:  # until it listens
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"uvicorn did not start: {log.read()[-2000:]}")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.seek(0)
    print(log.read()[-3000:])
    log.close()


def sign_in(page, base: str, user) -> None:
    """Signed in with a session made here (the server process hashes passwords its own way, not
    with the tests' fast hasher): its cookie, then the portal's home page."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
    page.goto(base + "/")
    page.wait_for_url("**/o/**")


def type_in_console(page, keys: str) -> None:
    """Type into the xterm.js terminal of the server page, as a person does (its hidden textarea
    takes the keys)."""
    page.locator(".serial-console-screen .xterm-helper-textarea").focus()
    page.keyboard.type(keys)


def console_screen(page) -> str:
    return page.locator(".serial-console-screen .xterm-rows").inner_text()
