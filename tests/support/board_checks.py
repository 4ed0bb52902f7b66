"""Checks of the board as a person sees it, measured in the page (shared by the browser tests and by
anyone looking at a running board):

- `small_texts`: visible text nodes rendered under a font size (wall-distance legibility);
- `clipped`: elements inside tiles whose content is cut off (overflowing their box, or an ellipsis).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

SMALL_TEXTS_JS = """(min) => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el) continue;
    const st = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (st.visibility === 'hidden' || st.display === 'none' || r.width === 0 || r.height === 0) continue;
    if (el.closest('[hidden]') || r.bottom < 0 || r.top > innerHeight) continue;
    const size = parseFloat(st.fontSize);
    if (size < min) out.push({text: text.slice(0, 40), size, tag: el.tagName, cls: el.className});
  }
  return out;
}"""

CLIPPED_JS = """(selector) => {
  const out = [];
  for (const root of document.querySelectorAll(selector)) {
    const box = root.getBoundingClientRect();
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (el.closest('.spark')) continue;  // the sparkline's canvas is drawn to fit
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const st = getComputedStyle(el);
      const cut = el.scrollWidth > el.clientWidth + 1 && st.overflowX !== 'visible' && el.clientWidth > 0;
      const outside = r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5 || r.left < box.left - 0.5;
      if (cut || outside) out.push({text: (el.textContent || '').trim().slice(0, 40), tag: el.tagName,
                                    cls: String(el.className), cut, outside,
                                    tile: root.dataset.tile || root.id || root.className});
    }
  }
  return out;
}"""


def small_texts(page: Page, min_px: float = 14.0) -> list[dict[str, Any]]:
    return page.evaluate(SMALL_TEXTS_JS, min_px)  # type: ignore[no-any-return]


def clipped(page: Page, selector: str = "#tiles .tile") -> list[dict[str, Any]]:
    return page.evaluate(CLIPPED_JS, selector)  # type: ignore[no-any-return]
