"""The API docs without internet: Swagger UI (/docs) and ReDoc (/redoc) in Debian's Chromium with every
request beyond loopback aborted. They must render every operation from the vendored assets alone,
try nothing beyond the API's host and log no console error. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright

from services.broker import EmbeddedBroker
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# a name that is not loopback, as users reach a deployed API: requests to it are answered by the test
# API through the route (Swagger UI, for one, skips its online validator for loopback addresses)
PUBLIC_HOST = "sqm.example.test"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def api(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API alone (no worker: the docs need none)."""
    stack = Stack(broker, tmp_path_factory.mktemp("docs"))
    try:
        stack.api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, launched as the board's tests launch it (nothing downloaded)."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def operations(api: Stack) -> list[tuple[str, str]]:
    spec = httpx.get(api.url + "/openapi.json", timeout=10).json()
    return [(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in METHODS]


@dataclass
class Offline:
    """A page that cannot leave the machine: what it tried beyond loopback, what failed, what it logged."""

    page: Page
    aborted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.aborted == [], f"tried to reach beyond the API's host: {self.aborted}"
        assert self.failed == [], f"requests that failed: {self.failed}"
        assert self.errors == [], f"console errors: {self.errors}"


def offline_page(chromium: Browser, api: Stack, public: bool = False) -> tuple[Offline, str]:
    """A page with every non-loopback request aborted, and the base URL to open. `public`: the API is
    opened as http://sqm.example.test:<port> (answered by the test API through the route)."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    seen = Offline(page)

    def route(r: Route) -> None:
        url = urlsplit(r.request.url)
        if url.hostname in LOOPBACK:
            r.continue_()
        elif public and url.hostname == PUBLIC_HOST and url.port == api.port:
            local = urlunsplit((url.scheme, f"127.0.0.1:{api.port}", url.path, url.query, url.fragment))
            r.fulfill(response=r.fetch(url=local))
        else:
            seen.aborted.append(r.request.url)
            r.abort("internetdisconnected")

    def failed(request: Request) -> None:
        if request.url not in seen.aborted:
            seen.failed.append(f"{request.url}: {request.failure}")

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            seen.errors.append(f"{msg.text} ({msg.location.get('url')})")

    def response(resp: Any) -> None:
        if resp.status >= 400:
            seen.failed.append(f"{resp.url}: {resp.status}")

    page.route("**/*", route)
    page.on("requestfailed", failed)
    page.on("response", response)
    page.on("console", console)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    base = f"http://{PUBLIC_HOST}:{api.port}" if public else api.url
    return seen, base


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize("public", [False, True], ids=["loopback", "public-host"])
def test_swagger_ui_renders_every_operation_offline(api: Stack, browser: Browser,
                                                     operations: list[tuple[str, str]], public: bool) -> None:
    seen, base = offline_page(browser, api, public)
    page = seen.page
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/kpis']", timeout=20_000)
    assert "sqm" in page.inner_text(".information-container .title")
    shown = page.eval_on_selector_all(
        ".opblock", "els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,"
                    " e.querySelector('.opblock-summary-path').dataset.path])")
    assert sorted(map(tuple, shown)) == sorted(operations)
    page.wait_for_load_state("networkidle")
    if not public:
        shot(page, "docs-swagger")
    seen.assert_clean()
    page.close()


@pytest.mark.parametrize("public", [False, True], ids=["loopback", "public-host"])
def test_redoc_renders_offline(api: Stack, browser: Browser,
                               operations: list[tuple[str, str]], public: bool) -> None:
    seen, base = offline_page(browser, api, public)
    page = seen.page
    page.goto(base + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=20_000)
    assert "sqm — streaming service-quality monitor" in page.inner_text(".api-info h1")
    assert page.locator("[data-section-id^='operation/']").count() == len(operations)
    kpis = page.locator("[data-section-id='operation/get_kpis_v1_kpis_get']")
    assert "/v1/kpis" in kpis.inner_text()
    page.wait_for_load_state("networkidle")
    if not public:
        shot(page, "docs-redoc")
    seen.assert_clean()
    page.close()


def test_the_docs_pages_load_nothing_from_elsewhere(api: Stack) -> None:
    """Every URL the two pages name is the API's own (no CDN, no Google fonts)."""
    for path in ("/docs", "/redoc"):
        html = httpx.get(api.url + path, timeout=10).text
        assert "https://" not in html and "http://" not in html, (path, html)
        for asset in ("/docs/static/", "/favicon.ico"):
            assert asset in html, (path, asset)


def test_favicon(api: Stack) -> None:
    r = httpx.get(api.url + "/favicon.ico", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/")
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
