"""Helpers for the browser tests: opening the page, reading a graph, counting drawn nodes."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page

from massif.schemas import Graph

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GROUPS = ("suppressed", "shared", "emphasized")


def watched_page(browser, width: int = 1280, height: int = 800) -> tuple[Page, list[str]]:
    """A page in a context of its own, and the list its console errors and uncaught exceptions
    go to (close it with ``page.context.close()``)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("html[data-state=ready]", timeout=30_000)


def pick_unsaved_pair(page: Page, benign: str, target: str) -> None:
    """Choose a pair that is not saved yet in the form, and wait until Show says so."""
    page.select_option("#benign", label=benign)
    page.select_option("#target", label=target)
    page.wait_for_selector("#analyze:has-text('not computed yet')")


def graph_of(site: dict, key: str) -> Graph:
    return Graph.model_validate(httpx.get(f"{site['url']}/graphs/{key}.json").json())


def drawn_counts(page: Page) -> dict[str, int]:
    return {g: page.locator(f"#graph-svg .node.{g}").count() for g in GROUPS}


def graph_counts(graph: Graph) -> dict[str, int]:
    return {g: sum(n.group == g for n in graph.nodes) for g in GROUPS}


def click_node(page: Page, node_id: str, **kw) -> None:
    page.locator(f'#graph-svg .node[data-id="{node_id}"]').click(**kw)


def in_view(page: Page, selector: str) -> bool:
    """Whether the element is shown whole inside the window, without scrolling anything."""
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box) and box["width"] > 0 and box["x"] >= 0 and box["y"] >= 0 and \
        box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"]


HOVER_TIMES = """async () => {
    const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    const nodes = d3.selectAll('#graph-svg .node').nodes().filter((_, i) => i % 7 === 3);
    const out = [];
    for (const el of nodes.slice(0, 40)) {
        await frame();
        const t0 = performance.now();
        el.dispatchEvent(new MouseEvent('mouseenter'));
        const card = document.querySelector('#node-id').textContent;
        if (card !== el.dataset.id) throw new Error('no card for ' + el.dataset.id);
        await frame();
        out.push(performance.now() - t0);
        el.dispatchEvent(new MouseEvent('mouseleave'));
    }
    return out;
}"""


def hover_times(page: Page) -> list[float]:
    """Milliseconds from the mouse entering a node to the next painted frame, for 40 nodes."""
    return page.evaluate(HOVER_TIMES)
