"""The board as a supervisor uses it: Debian's Chromium (driven by Playwright) against a real stack
(embedded broker, worker, API, notifier). Screenshots go to test-artifacts/."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from services.broker import EmbeddedBroker
from services.loadgen import LIVE, lifecycles, random_stream, survey, ticket
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "board-admin-token-0123456789"
XSS = ['<script>window.__xss = 1</script> waited 40 minutes', '<img src=x onerror="window.__xss = 2"> 客服态度很差']
RULES = """
rules:
  - {id: tickets-seen, kpi: tickets_created, scope: "team:*", window: 5m, op: ">", warning: 0, critical: 2,
     for: 0s, summary: "{scope} opened tickets", intervention: "Look at the queue."}
  - {id: sl-line, kpi: service_level, scope: all, window: 1h, op: "<", warning: 0.99, critical: 0.5}
"""


@pytest.fixture(scope="module")
def board_stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("board")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    stack = Stack(broker, tmp, SQM_ADMIN_TOKEN=TOKEN, SQM_RULES_FILE=str(rules))
    try:
        stack.worker()
        stack.notifier()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        now = time.time()
        events: list[Any] = random_stream(600, now, seed=41, bands=LIVE) + lifecycles(300, now, seed=42)
        events += [survey(now - 5, f"xss{i}", team="billing", csat=1, comment=c) for i, c in enumerate(XSS)]
        wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 90, "ready", stack)
        produce(stack, events)
        wait_for(lambda: stack.seen_messages() >= len(events), 90, "every event", stack)
        wait_for(lambda: httpx.get(stack.url + "/v1/alerts", params={"state": "firing"}).json()["total"] > 0, 60,
                 "a firing alert", stack)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def open_board(browser: Browser, stack: Stack, query: str, size: tuple[int, int] = (1600, 1000)) -> Page:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(f"{stack.url}/board?{query}")
    page.wait_for_selector("#tiles [data-kpi]")
    page.wait_for_function("document.getElementById('updated').textContent.match(/\\d/)")  # the stream is live
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"board-{name}.png"))


def same(board: str, api: float | None) -> bool:
    value = None if board == "null" else float(board)
    if value is None or api is None:
        return value is api
    return math.isclose(value, api, rel_tol=1e-9, abs_tol=1e-9)


def test_the_board_shows_what_the_api_says(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, "scope=all&window=1h")
    figures = page.eval_on_selector_all("#tiles [data-kpi][data-scope='all']",
                                        "els => els.map(e => [e.dataset.kpi, e.dataset.value])")
    api = board_stack.kpis("all", "1h")
    assert len(figures) == 13
    for kpi, value in figures:
        if kpi.endswith("_s") and kpi in ("longest_wait_s", "oldest_unanswered_s"):
            assert abs(float(value) - api[kpi]["value"]) < 5, kpi  # ages tick between the two readings
        else:
            assert same(value, api[kpi]["value"]), (kpi, value, api[kpi])
    queue = page.get_attribute("#queues [data-kpi='calls_waiting'][data-scope='queue:q1']", "data-value")
    assert same(queue, board_stack.kpis("queue:q1", "1h")["calls_waiting"]["value"])
    # colour is never the only signal: the service-level tile carries its state as a word
    assert page.inner_text("#tiles article.status-critical .badge, #tiles article.status-warning .badge")
    shot(page, "all")
    page.close()


def test_an_event_appears_within_two_seconds_without_reload(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, "team=live&window=5m")
    page.evaluate("window.__loaded = true")  # gone if the page reloads
    before = page.get_attribute("#tiles [data-kpi='backlog']", "data-value")
    now = time.time()
    t0 = time.monotonic()
    produce(board_stack, [ticket("ticket.created", now, now, "live-1", team="live")])
    page.wait_for_function(
        "(before) => document.querySelector(\"#tiles [data-kpi='backlog']\").dataset.value !== before", arg=before,
        timeout=5000)
    took = time.monotonic() - t0
    assert page.evaluate("window.__loaded") is True
    assert float(page.get_attribute("#tiles [data-kpi='backlog']", "data-value") or 0) == float(before or 0) + 1
    assert took <= 2.0, f"the event took {took:.2f} s to reach the board"
    page.close()


def test_chinese_labels(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, "lang=zh-CN&theme=light")
    assert "服务监控大屏" in page.inner_text("header")
    labels = page.inner_text("#tiles")
    assert "服务水平" in labels and "客户满意度" in labels and "排队来电" in labels
    assert page.get_attribute("html", "lang") == "zh-CN"
    shot(page, "zh-CN")
    page.close()
    page = browser.new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page.goto(f"{board_stack.url}/board")
    assert "服务水平" in page.inner_text("#tiles")
    page.close()


def test_acknowledging_from_the_board(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, f"key={TOKEN}&scope=all")
    assert TOKEN not in page.url, "the key stays out of the address bar"
    row = page.locator("#alerts li[data-alert-id]").first
    alert_id = row.get_attribute("data-alert-id")
    row.locator("button.ack").click()
    page.wait_for_selector(f"#alerts li[data-alert-id='{alert_id}'] .acked")
    acked = httpx.get(f"{board_stack.url}/v1/alerts/{alert_id}").json()
    assert acked["acked_by"] == "token" and acked["history"][-1]["kind"] == "acknowledged"
    assert not page.locator(".signin").count()
    shot(page, "acknowledged")
    page.close()
    # a viewer without an admin key sees no button that could only fail, and how to sign in
    page = open_board(browser, board_stack, "scope=all")
    page.wait_for_selector("#alerts li[data-alert-id]")
    assert page.locator("#alerts button.ack").count() > 0  # the shared markup has them ...
    assert not any(b.is_visible() for b in page.locator("#alerts button.ack").all())  # ... shown to admins only
    assert "/board?key=" in page.inner_text(".signin")
    page.close()
    # the endpoint itself answers why, in the row's place
    other = httpx.get(f"{board_stack.url}/v1/alerts", params={"state": "firing", "acked": "false"}).json()["alerts"]
    r = httpx.post(f"{board_stack.url}/board/alerts/{other[0]['id']}/ack")
    assert r.status_code == 401 and "admin" in r.text and 'class="alert error"' in r.text


def test_comments_are_text_and_run_nothing(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, "team=billing")
    text = page.inner_text("#comments")
    assert XSS[0] in text and XSS[1] in text
    assert page.evaluate("window.__xss") is None
    assert page.locator("#comments img, #comments script").count() == 0
    page.close()


def test_kiosk_fits_a_1080p_wall_screen(board_stack: Stack, browser: Browser) -> None:
    page = open_board(browser, board_stack, "kiosk=1&theme=dark", size=(1920, 1080))
    width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert (width, height) <= (1920, 1080), (width, height)
    assert not page.locator("form.controls").is_visible()
    assert page.locator("#tiles article").count() == 13
    shot(page, "kiosk-1920x1080")
    page.close()


def test_staleness_indicator_and_rotation(board_stack: Stack, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.clock.install()
    page.goto(f"{board_stack.url}/board?scope=team:billing")
    page.wait_for_selector("#tiles [data-kpi]")
    page.clock.run_for(1500)
    assert "stale" not in (page.get_attribute("#updated", "class") or "")
    page.clock.run_for(31_000)  # 31 s with no message (the page's clock runs ahead of the server)
    assert "stale" in (page.get_attribute("#updated", "class") or ""), "no update for 30 s must show red"
    shot(page, "stale")
    page.close()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.clock.install()
    page.goto(f"{board_stack.url}/board?rotate=team:billing,team:tech&every=20&scope=team:billing")
    page.wait_for_selector("#tiles [data-kpi]")
    with page.expect_navigation():
        page.clock.run_for(21_000)  # `every=20`: the next scope of the rotation
    assert "scope=team%3Atech" in page.url or "scope=team:tech" in page.url
    page.close()
