"""The graph by keyboard (issue 25 item 5) in Chromium at 1280×800 and 1920×1080: Tab reaches
the graph (one tab stop), the arrows, Home and End move the focus as docs/web.md says, checked
against the node positions drawn and graph.json's layers; the focused node acts as a hovered
one (its card, its copy on the overlay), wears a focus ring in view and is named to screen
readers; Enter pins it (the URL has the pin), Shift+Enter adds it, and in "click deletes neurons"
mode Enter and Delete delete it; Escape still reaches the page; a zoomed graph pans to the focused
node. Screenshots in ``test-artifacts/``."""

from __future__ import annotations

import pytest

from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(240, func_only=True)  # the test alone, not the site's set-up
SIZES = [(1280, 800), (1920, 1080)]
POSITIONS = """[...document.querySelectorAll('#graph-svg .node')].map((el) => {
    const m = el.transform.baseVal.consolidate().matrix;
    return [el.dataset.id, m.e, m.f];
})"""


def focused(page) -> str:
    return page.locator("#graph-svg").get_attribute("data-focus")


FOCUS_IS = "id => document.querySelector('#graph-svg').dataset.focus === id"


def press(page, key: str, expected: str) -> None:
    page.keyboard.press(key)
    page.wait_for_function(FOCUS_IS, arg=expected)


def node(page, node_id: str, part: str = ""):
    return page.locator(f'#graph-svg .node[data-id="{node_id}"] {part}'.strip())


def tab_to_graph(page) -> int:
    """Press Tab until the graph has the focus; answers how many presses it took."""
    for n in range(1, 121):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.id") == "graph-svg":
            return n
    raise AssertionError("Tab never reached the graph")


def rows_of(page, graph) -> list[list[tuple[str, float]]]:
    """The drawn nodes by layer (graph.json's order: the input side first), left to right."""
    layer = {n.id: n.layer for n in graph.nodes}
    rows: dict[str, list[tuple[str, float]]] = {name: [] for name in graph.layers}
    for node_id, x, _y in page.evaluate(POSITIONS):
        rows[layer[node_id]].append((node_id, x))
    return [sorted(rows[name], key=lambda p: p[1]) for name in graph.layers]


def nearest(row: list[tuple[str, float]], x: float) -> str:
    return min(row, key=lambda p: (abs(p[1] - x), p[1]))[0]


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tab_reaches_the_graph_and_the_arrows_move_across_nodes(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    by_id = {n.id: n for n in graph.nodes}
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}")
        svg = page.locator("#graph-svg")
        assert svg.get_attribute("role") == "application"
        assert f"{len(graph.nodes)} neurons" in svg.get_attribute("aria-label")
        assert svg.get_attribute("tabindex") == "0"
        # One tab stop: no node is a tab stop of its own.
        assert page.locator("#graph-svg .node[tabindex]").count() == 0
        tab_to_graph(page)

        rows = rows_of(page, graph)
        first = next(row for row in rows if row)
        page.wait_for_function("document.querySelector('#graph-svg').dataset.focus !== ''")
        start = focused(page)
        assert start == first[0][0]  # no pins: the bottom row's first node
        # It acts as a hovered node: its card, its copy on the overlay.
        assert page.locator("#node-id").text_content() == start
        assert page.locator(f'#graph-top .node.hover[data-id="{start}"]').count() == 1
        # Named to screen readers through aria-activedescendant.
        active = page.locator("#" + svg.get_attribute("aria-activedescendant"))
        assert active.get_attribute("data-id") == start
        label = active.get_attribute("aria-label")
        info = by_id[start]
        assert start in label and info.group in label and "vulnerability" in label
        if info.vulnerability is not None:
            assert f"{info.vulnerability:.3f}".rstrip("0").rstrip(".") in label
        # The focus ring: shown, around the node, in view.
        ring = page.locator("#graph-top .focus-ring")
        assert ring.is_visible() and in_view(page, "#graph-top .focus-ring")
        rb, nb = ring.bounding_box(), node(page, start, "rect.frame").bounding_box()
        assert rb["x"] < nb["x"] and rb["y"] < nb["y"]
        assert rb["x"] + rb["width"] > nb["x"] + nb["width"]
        assert rb["y"] + rb["height"] > nb["y"] + nb["height"]

        # Left and right within the row, in drawn order; Home and End its ends.
        r = rows.index(first)
        row = rows[r]
        assert len(row) >= 3, "the default graph's first layer has few nodes"
        press(page, "ArrowRight", row[1][0])
        assert page.locator("#node-id").text_content() == row[1][0]
        press(page, "ArrowRight", row[2][0])
        press(page, "ArrowLeft", row[1][0])
        press(page, "End", row[-1][0])
        page.keyboard.press("ArrowRight")  # at the end it stays
        press(page, "Home", row[0][0])
        page.keyboard.press("ArrowLeft")
        assert focused(page) == row[0][0]
        press(page, "ArrowRight", row[1][0])

        # Up and down: the nearest node by x in the row above (the next layer) and below.
        x = row[1][1]
        above = next(i for i in range(r + 1, len(rows)) if rows[i])
        up = nearest(rows[above], x)
        press(page, "ArrowUp", up)
        assert page.locator("#node-id").text_content() == up
        up_x = dict(rows[above])[up]
        press(page, "ArrowDown", nearest(row, up_x))
        press(page, "ArrowDown", nearest(row, up_x))  # the bottom row: it stays

        # Enter pins the focused node alone (the URL has it); Shift+Enter adds the next one.
        here = focused(page)
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: url.endswith(f"/graphs/{key}/nodes/{here}"))
        assert page.evaluate("window.massif.store.get().pins") == [here]
        assert "pinned" in node(page, here).get_attribute("aria-label")
        ids = [n for n, _ in row]
        i = ids.index(here)
        there = ids[i + 1] if i + 1 < len(ids) else ids[i - 1]
        press(page, "ArrowRight" if i + 1 < len(ids) else "ArrowLeft", there)
        page.keyboard.press("Shift+Enter")
        page.wait_for_url(lambda url: url.endswith(f"/graphs/{key}?pins={here},{there}"))
        # Enter, as a click, pins the focused node alone.
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: url.endswith(f"/graphs/{key}/nodes/{there}"))

        # Escape is left to the page (it cancels jobs there): the graph does not take it.
        prevented = page.evaluate("""() => new Promise((resolve) => {
            const seen = (e) => resolve(e.defaultPrevented);
            document.addEventListener('keydown', seen, { once: true });
            document.querySelector('#graph-svg').dispatchEvent(
                new KeyboardEvent('keydown', { key: 'Escape', bubbles: true, cancelable: true }));
        })""")
        assert prevented is False
        assert page.evaluate("document.activeElement.id") == "graph-svg" and focused(page) == there

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"keyboard-{width}x{height}.png"))

        # Leaving the graph ends the hover it made; the ring goes.
        page.keyboard.press("Shift+Tab")
        page.wait_for_function("window.massif.store.get().hover === null")
        assert not ring.is_visible()
        assert not page.evaluate("document.scrollingElement.scrollHeight > innerHeight + 1")
    finally:
        page.context.close()
    assert not errors, errors


def test_in_delete_mode_enter_and_delete_delete_the_focused_node(site, page):
    key = site["default"]
    open_page(page, site["url"] + f"/graphs/{key}")
    page.locator("#edit-mode").check()
    page.locator("#graph-svg").focus()
    page.keyboard.press("ArrowRight")  # a node has the focus now, whichever
    page.wait_for_function("document.querySelector('#graph-svg').dataset.focus !== ''")
    first = focused(page)
    page.keyboard.press("Enter")
    page.wait_for_function("id => window.massif.store.get().masked.includes(id)", arg=first)
    assert page.evaluate("window.massif.store.get().pins") == []  # deleted, not pinned
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"id => !({FOCUS_IS})(id)", arg=first)
    second = focused(page)
    page.keyboard.press("Delete")
    page.wait_for_function("id => window.massif.store.get().masked.includes(id)", arg=second)
    page.wait_for_url(lambda url: url.endswith(f"?deleted={first},{second}"))
    assert "deleted" in node(page, second).get_attribute("aria-label")
    page.keyboard.press("Delete")  # Delete only deletes: pressed again it keeps the node deleted
    page.keyboard.press("Enter")  # Enter toggles, as a click does: restored
    page.wait_for_function("id => !window.massif.store.get().masked.includes(id)", arg=second)
    assert page.evaluate("window.massif.store.get().masked") == [first]


def test_a_zoomed_graph_pans_to_the_focused_node(site, page):
    key = "synthetic-30"  # 270 nodes: zoomed in, most are out of view
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")
    canvas = page.locator("#graph-canvas").bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] * 0.3, canvas["y"] + canvas["height"] * 0.5)
    for _ in range(8):
        page.mouse.wheel(0, -300)
    page.wait_for_function("+document.querySelector('#graph-svg').dataset.zoom >= 3")
    page.locator("#graph-svg").focus()
    rows = rows_of(page, graph)
    top_row = next(row for row in reversed(rows) if row)
    page.keyboard.press("ArrowRight")  # starts the focus
    for _ in range(len(rows)):
        page.keyboard.press("ArrowUp")
    page.keyboard.press("End")
    page.wait_for_function(FOCUS_IS, arg=top_row[-1][0])
    # The node ends in the graph's box, right of the layer names.
    page.wait_for_function("""(id) => {
        const box = document.querySelector('#graph-canvas').getBoundingClientRect();
        const frame = document.querySelector(`#graph-svg .node[data-id="${id}"] rect.frame`);
        const r = frame.getBoundingClientRect();
        return r.left >= box.left + 90 && r.right <= box.right &&
            r.top >= box.top && r.bottom <= box.bottom;
    }""", arg=top_row[-1][0])
    assert float(page.locator("#graph-svg").get_attribute("data-zoom")) >= 3  # panned, not unzoomed
