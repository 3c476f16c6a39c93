"""Edges per neuron (issue 25 item 4) in Chromium: the View control draws an edge when it is
among the k heaviest, in the edge view shown, of its source's outgoing or its target's incoming
edges. On a graph whose edges were set by hand (the answer worked out in tests/helpers/edges.py)
and on the default analysis (the answer by the rule written out in Python), for k = 1 and 3 in
each edge view: the drawn edges, the legend's count, the URL (``top=``, the default 2 left out)
read back exactly; hovering or pinning a neuron shows all of its edges, the cut ones too; the
exported SVG holds only the edges shown and the numbers say which. Screenshots of the default
analysis at the default k and at all, in ``test-artifacts/``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import Page

from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page
from tests.helpers.edges import (
    HAND_EDGES,
    HAND_TOP1,
    HAND_TOP2_ATTACKED,
    expected_shown,
    hand_graph,
    ids,
)

pytestmark = pytest.mark.timeout(240, func_only=True)
SIZES = [(1280, 800), (1920, 1080)]
SVG = "{http://www.w3.org/2000/svg}"
DRAWN = """() => [...document.querySelectorAll('#graph-svg path.edge')]
    .filter((p) => getComputedStyle(p).display !== 'none')
    .map((p) => `${p.dataset.source}>${p.dataset.target}`)"""
OVERLAY = """() => [...document.querySelectorAll('#graph-top path.edge')]
    .filter((p) => getComputedStyle(p).display !== 'none')
    .map((p) => `${p.dataset.source}>${p.dataset.target}`)"""


@pytest.fixture(scope="module")
def hand(site):
    graph, names = hand_graph()
    site["ws"].save(graph, "topk-hand")
    return graph, names


def drawn(page: Page) -> set[str]:
    return set(page.evaluate(DRAWN))


def legend(page: Page) -> str:
    return page.locator("#legend .edges-shown").text_content()


def wait_url(page: Page, test: str) -> None:
    """Until the page's address satisfies `test` (a JS expression over `location`)."""
    page.wait_for_function(f"() => {test}", timeout=10_000)


def test_a_hand_set_graph_draws_the_edges_worked_out(site, page, hand):
    graph, names = hand
    url = site["url"] + "/graphs/topk-hand?top=1"
    open_page(page, url)
    assert page.url == url  # read back as written
    assert page.locator("#edge-top").input_value() == "1"
    assert drawn(page) == ids(HAND_TOP1["attacked"], names)
    assert legend(page) == f"showing 8 of {len(HAND_EDGES)} edges (top 1 per neuron)"

    page.locator("#edge-mode input[value=benign]").check()
    assert drawn(page) == ids(HAND_TOP1["benign"], names)
    assert legend(page) == f"showing 6 of {len(HAND_EDGES)} edges (top 1 per neuron)"
    wait_url(page, "location.search === '?edges=benign&top=1'")

    page.locator("#edge-mode input[value=attacked]").check()
    page.locator("#edge-top").select_option("2")  # the default: left out of the URL
    assert drawn(page) == ids(HAND_TOP2_ATTACKED, names)
    assert legend(page) == f"showing 9 of {len(HAND_EDGES)} edges (top 2 per neuron)"
    wait_url(page, "location.search === ''")

    page.locator("#edge-top").select_option("all")
    assert drawn(page) == ids(set(HAND_EDGES), names)
    assert legend(page) == f"showing all {len(HAND_EDGES)} edges"
    wait_url(page, "location.search === '?top=all'")
    page.reload()
    page.wait_for_selector("html[data-state=ready]")
    assert page.locator("#edge-top").input_value() == "all" and len(drawn(page)) == len(HAND_EDGES)


def test_hover_and_pins_show_a_neurons_cut_edges_and_export_shows_only_the_drawn(site, page, hand):
    graph, names = hand
    open_page(page, site["url"] + "/graphs/topk-hand?top=1")
    cut = f"{names['A']}>{names['X']}"  # A's second-heaviest edge, and X's second
    assert cut not in drawn(page)
    a_edges = {f"{names['A']}>{names[t]}" for t in "WXY"}
    node = page.locator(f'#graph-svg .node[data-id="{names["A"]}"]')
    node.hover()
    page.wait_for_function("n => document.querySelectorAll('#graph-top path.edge').length === n",
                           arg=len(a_edges))
    assert set(page.evaluate(OVERLAY)) == a_edges  # all of A's edges, the cut one too
    node.click()  # pinned: the same, after the pointer leaves
    page.mouse.move(2, 2)
    page.wait_for_function("() => window.massif.store.get().hover === null")
    assert set(page.evaluate(OVERLAY)) == a_edges
    assert cut not in drawn(page)  # the graph itself still cuts it
    node.click()  # unpinned: no overlay, and the figure holds only the edges drawn
    page.mouse.move(2, 2)
    page.wait_for_function("() => document.querySelectorAll('#graph-top path.edge').length === 0")

    root = ET.fromstring(page.evaluate("window.massif.exportSvg()").split("?>", 1)[1])
    in_figure = {f"{p.get('data-source')}>{p.get('data-target')}" for p in root.iter(f"{SVG}path")
                 if "edge" in (p.get("class") or "").split()}
    assert in_figure == ids(HAND_TOP1["attacked"], names)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert f"showing 8 of {len(HAND_EDGES)} edges (top 1 per neuron)" in text
    numbers = page.evaluate("window.massif.exportNumbers()")
    assert numbers["view"]["edges_per_neuron"] == 1
    assert {f"{e['source']}>{e['target']}" for e in numbers["edges"] if e["shown"]} == \
        ids(HAND_TOP1["attacked"], names)
    assert len(numbers["edges"]) == len(HAND_EDGES)


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_default_analysis_in_each_edge_view(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    page, errors = watched_page(browser, width, height)
    try:
        base = site["url"] + f"/graphs/{key}"
        open_page(page, base)
        assert page.url == base and page.locator("#edge-top").input_value() == "2"
        default = expected_shown(graph, "attacked", 2)
        assert drawn(page) == default
        assert len(default) < len(graph.edges)  # the default cuts this analysis's edges
        assert legend(page) == \
            f"showing {len(default)} of {len(graph.edges)} edges (top 2 per neuron)"
        assert in_view(page, "#legend .edges-shown")
        page.screenshot(path=str(ARTIFACTS / f"edges-top2-{width}x{height}.png"))
        for mode in ("benign", "attacked", "change"):
            for k in (1, 3):
                query = f"?edges={mode}&top={k}" if mode != "attacked" else f"?top={k}"
                open_page(page, base + query)
                assert page.url == base + query, (mode, k)
                want = expected_shown(graph, mode, k)
                assert drawn(page) == want, (mode, k)
                assert legend(page) == \
                    f"showing {len(want)} of {len(graph.edges)} edges (top {k} per neuron)"
        open_page(page, base + "?top=all")
        assert drawn(page) == expected_shown(graph, "attacked", None)
        assert legend(page) == f"showing all {len(graph.edges)} edges"
        page.screenshot(path=str(ARTIFACTS / f"edges-all-{width}x{height}.png"))
        open_page(page, base + "?top=4")  # not a choice: the plain message, the default drawn
        assert "top=4 is not one of all, 1, 2, 3, 5" in page.locator("#error").text_content()
        assert in_view(page, "#error") and drawn(page) == default
    finally:
        page.context.close()
    assert not errors, errors
