"""The page as a researcher's instrument, in Chromium against the real server (``conftest.py``):
the first deletion's results in view (its speed, and the hover's, are timing tests), plain
messages for bad URLs, pathways, edge views, tracing, pins, find, zoom, the view in the URL, the
large view, defense picks as they are found, and screenshots at 1280×800 and 1920×1080 in
``test-artifacts/``.

The pathway and tracing checks recompute, in Python, the definitions that docs/web.md gives
from graph.json's numbers, and compare them with what the page draws."""

from __future__ import annotations

import math
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import Page

from massif.schemas import Graph
from tests.helpers.browser import (
    ARTIFACTS,
    click_node,
    graph_of,
    hover_times,
    in_view,
    open_page,
    pick_unsaved_pair,
    watched_page,
)

pytestmark = pytest.mark.timeout(180, func_only=True)  # the test alone, not the site's set-up
SIZES = [(1280, 800), (1920, 1080)]


def pathway(graph: Graph, mode: str, k: int, per_layer: int = 3) -> set[str]:
    """docs/web.md's pathway definition, written again from the text."""
    def score(n) -> float:
        a = n.activation
        return {"activated": a[k], "changed": abs(a[k] - a[0]), "excited": a[k] - a[0],
                "inhibited": a[0] - a[k]}[mode]

    def best(nodes):
        nodes = [n for n in nodes if mode == "activated" or score(n) > 0]
        return sorted(nodes, key=lambda n: (-score(n), n.id))[:per_layer]

    chosen: set[str] = set()
    above: list[str] = []
    for layer in reversed(graph.layers):
        nodes = [n for n in graph.nodes if n.layer == layer]
        feeding = {e.source for e in graph.edges if e.target in above}
        picked = best([n for n in nodes if n.id in feeding]) or best(nodes)
        chosen |= {n.id for n in picked}
        above = [n.id for n in picked]
    return chosen


def reach(graph: Graph, start: set[str], direction: str) -> set[str]:
    """Every node reached from ``start`` along edges toward the input or the output."""
    seen, frontier = set(start), set(start)
    while frontier:
        if direction == "ancestors":
            nxt = {e.source for e in graph.edges if e.target in frontier}
        else:
            nxt = {e.target for e in graph.edges if e.source in frontier}
        frontier = nxt - seen
        seen |= nxt
    return seen


@pytest.fixture(params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def page(request, browser) -> Page:
    """This module's page: at 1280×800 and at 1920×1080, failing on any console error."""
    pg, errors = watched_page(browser, *request.param)
    yield pg
    pg.context.close()
    assert not errors, errors


def state(page: Page) -> dict:
    return page.evaluate("""() => { const s = window.massif.store.get();
        return {pins: s.pins, masked: s.masked, k: s.strengthIndex, edgeMode: s.edgeMode,
                highlight: s.highlight, trace: s.trace}; }""")


def test_the_first_deletion_shows_its_results_in_view(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    open_page(page, site["url"] + f"/graphs/{key}")
    # Opening the analysis builds the server's editors (the page asks at once).
    page.wait_for_selector("html[data-editor=ready]", timeout=60_000)
    page.locator("#edit-mode").check()
    node = max((n for n in graph.nodes if n.group == "emphasized"),
               key=lambda n: n.vulnerability or 0)
    click_node(page, node.id)
    page.wait_for_selector(f"#edit-result[data-mask='{node.id}']", timeout=30_000)
    page.wait_for_selector("#edit-result[data-phase=full]", timeout=60_000)
    # The numbers and both curves, and the deleted node, in view without scrolling.
    for sel in ("#edit-result", "#edit-chart", f'#graph-svg .node[data-id="{node.id}"]'):
        assert in_view(page, sel), sel
    for cls in ("transfer-after", "adaptive-after"):  # both lines drawn, with widths apart
        assert page.locator(f"#edit-chart path.{cls}").count() == 1
    assert page.locator("#edit-chart .axis-title").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"edit-{width}x{height}.png"))


@pytest.mark.parametrize("path,words", [
    ("/?benign=Nope", 'no benign class "Nope"'),
    ("/?benign=Sneaker&target=Sneaker", "must differ"),
    ("/?max_strength=-1", "a number from"),
    ("/?max_strength=0", "a number from"),
    ("/?max_strength=abc", '"abc"'),
    ("/?attack=cw", 'no attack "cw"'),
    ("/graphs/no-such-analysis", "no analysis 'no-such-analysis'"),
    ("/graphs/{key}/nodes/nolayer:3", "nolayer:3 is not in this analysis"),
    ("/graphs/{key}?k=99&edges=thick", "edges=thick is not one of"),
])
@pytest.mark.parametrize("width,height", SIZES)
def test_bad_urls_show_a_plain_message_in_view_and_start_nothing(site, browser, path, words,
                                                                 width, height):
    jobs = site["app"].state.jobs
    computed = jobs.computed
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    started: list[str] = []
    page.on("request", lambda r: started.append(r.url) if r.method == "POST" and
            r.url.endswith("/analyses") else None)
    try:
        page.goto(site["url"] + path.format(key=site["default"]))
        page.wait_for_selector("html[data-state]", timeout=30_000)
        page.wait_for_selector("#error:not([hidden])", timeout=10_000)
        message = page.locator("#error").text_content()
        assert words in message, message
        assert "{" not in message and "Internal Server Error" not in message
        assert in_view(page, "#error")
        page.wait_for_timeout(300)
        assert not started and jobs.computed == computed and not errors
    finally:
        context.close()


def test_pathway_modes_light_up_the_documented_neurons_through_every_layer(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")
    K = len(graph.attack.strengths)
    for mode in ("activated", "changed", "excited", "inhibited"):
        page.select_option("#highlight", mode)
        for k in (K - 1, 1):
            page.evaluate(f"window.massif.store.set({{strengthIndex: {k}}})")
            drawn = page.locator("#graph-svg").get_attribute("data-pathway")
            expected = pathway(graph, mode, k)
            assert set(drawn.split(",")) == expected, (mode, k)
            assert page.locator("#graph-svg .node.on-path").count() == len(expected)
            layers = {i.rpartition(":")[0] for i in expected}
            if mode in ("activated", "changed"):  # every layer has nodes with a score
                assert layers == set(graph.layers)
            on_path = {(e.source, e.target) for e in graph.edges
                       if e.source in expected and e.target in expected}
            assert page.locator("#graph-svg .edge.on-path").count() == len(on_path)
    page.select_option("#highlight", "none")
    assert page.locator("#graph-svg.pathway").count() == 0


def test_edge_views_are_clearly_different_and_say_which_strength_they_show(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")

    def edges():
        return page.evaluate("""() => d3.selectAll('#graph-svg .edge').nodes().map(el => {
            const d = d3.select(el).datum(), c = d3.color(el.getAttribute('stroke')).rgb();
            return {w: +el.getAttribute('stroke-width'), r: c.r, b: c.b,
                    delta: d.influence_attacked - d.influence_benign}; })""")

    colours = {}
    page.wait_for_timeout(200)  # a resize's redraw would come 60 ms after it
    draws = page.locator("#graph-svg").get_attribute("data-draws")
    for mode in ("benign", "attacked", "change"):
        page.locator(f'#edge-mode input[value="{mode}"]').check()
        assert page.locator("#graph-svg").get_attribute("data-edge-mode") == mode
        rows = edges()
        colours[mode] = {(r["r"], r["b"]) for r in rows}
        if mode == "change":
            # wider = larger change; gains orange (red > blue), losses blue (blue > red)
            order = sorted(rows, key=lambda r: abs(r["delta"]))
            assert [r["w"] for r in order] == sorted(r["w"] for r in rows)
            big = [r for r in rows if abs(r["delta"]) > 0.3 * max(abs(q["delta"]) for q in rows)]
            assert big and all((r["r"] > r["b"]) == (r["delta"] > 0) for r in big)
            legend = page.locator("#legend .edges-change").text_content()
            assert "attacked − benign" in legend and "lost" in legend and "gained" in legend
        else:
            assert len(colours[mode]) == 1  # one colour, width by that influence
    assert colours["benign"] != colours["attacked"] and len(colours["change"]) > 5
    # Edges are measured at ε_max only: away from it, the legend says so.
    assert "measured at" not in page.locator("#legend").text_content()
    page.evaluate("window.massif.store.set({strengthIndex: 1})")
    note = page.locator("#legend .edge-note").text_content()
    assert f"{graph.attack.strengths[-1]:g}" in note and "ε" in note
    page.select_option("#highlight", "excited")
    page.wait_for_timeout(200)
    # Restyled in place: the legend strip's height is fixed, so the graph is not laid out again.
    assert page.locator("#graph-svg").get_attribute("data-draws") == draws


@pytest.mark.parametrize("width,height", [(1280, 800), (1024, 768)])
def test_the_legend_notes_are_in_view_without_scrolling(site, browser, width, height):
    """The notes at the legend's end (edges measured at ε_max, the pathway shown) are seen
    whole; other views and strengths fit the same strip, so the graph is not laid out again."""
    key = site["default"]
    page, errors = watched_page(browser, width, height)
    inside = """sel => {
        const legend = document.querySelector('#legend').getBoundingClientRect();
        const r = document.querySelector(sel).getBoundingClientRect();
        return r.height > 0 && r.top >= legend.top && r.bottom <= legend.bottom - 1; }"""
    try:
        open_page(page, site["url"] + f"/graphs/{key}?k=1&edges=change&highlight=changed")
        page.wait_for_timeout(200)  # a resize's redraw would come 60 ms after it
        draws = page.locator("#graph-svg").get_attribute("data-draws")
        strip = page.locator("#legend").bounding_box()["height"]
        # (the benign view's edges are the clean images': no strength to note)
        views = [{}, {"edgeMode": "attacked"}, {"highlight": "inhibited", "strengthIndex": 0},
                 {"highlight": "excited"}, {"edgeMode": "benign"}]
        for view in views:
            page.evaluate("v => window.massif.store.set(v)", view)
            notes = ["#legend .pathway-note"]
            if page.evaluate("window.massif.store.get().edgeMode") != "benign":
                notes.append("#legend .edge-note")
            for sel in notes:
                assert page.evaluate(inside, sel), (view, sel)
                assert in_view(page, sel)
            assert page.locator("#legend").evaluate("el => el.scrollHeight <= el.clientHeight")
            assert page.locator("#legend").bounding_box()["height"] == strip
        page.wait_for_timeout(200)
        assert page.locator("#graph-svg").get_attribute("data-draws") == draws
    finally:
        page.context.close()
    assert not errors, errors


def test_tracing_pins_find_and_zoom(site, page):
    key = "synthetic-30"
    graph = site["ws"].load(key)
    open_page(page, site["url"] + f"/graphs/{key}")
    top = [n for n in graph.nodes if n.layer == graph.layers[-1]]
    bottom = [n for n in graph.nodes if n.layer == graph.layers[0]]
    # All ancestors of a top-layer node, over several layers.
    page.select_option("#trace", "ancestors")
    node = max(top, key=lambda n: len(reach(graph, {n.id}, "ancestors")))
    click_node(page, node.id)
    drawn = page.evaluate("[...document.querySelectorAll('#graph-top .node')]"
                          ".map(el => el.dataset.id)")
    expected = reach(graph, {node.id}, "ancestors")
    assert set(drawn) == expected and len({i.rpartition(':')[0] for i in expected}) > 2
    # Shift-click pins a second node; descendants of both.
    page.select_option("#trace", "descendants")
    low = max(bottom, key=lambda n: len(reach(graph, {n.id}, "descendants")))
    click_node(page, low.id, modifiers=["Shift"])
    assert state(page)["pins"] == [node.id, low.id]
    assert page.locator("#pins button").count() == 2
    drawn = page.evaluate("[...document.querySelectorAll('#graph-top .node')]"
                          ".map(el => el.dataset.id)")
    assert set(drawn) == reach(graph, {node.id, low.id}, "descendants")
    page.locator("#unpin").click()
    assert state(page)["pins"] == [] and page.locator("#graph-top .node").count() == 0
    # Find a neuron by id: pinned, shown in the card, zoomed to.
    target = graph.nodes[len(graph.nodes) // 2]
    page.locator("#find").fill(target.id)
    page.locator("#find").press("Enter")
    assert state(page)["pins"] == [target.id]
    assert page.locator("#node-id").text_content() == target.id
    page.wait_for_function("+document.querySelector('#graph-svg').dataset.zoom > 1")
    page.wait_for_function(f"""() => {{  // the zoom eases in over a quarter second
        const r = document.querySelector('#graph-svg .node[data-id="{target.id}"]')
            .getBoundingClientRect();
        return r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
    }}""", timeout=5_000)
    page.locator("#find").fill("nowhere:1")
    page.locator("#find").press("Enter")
    assert "No neuron nowhere:1" in page.locator("#find-error").text_content()
    # Reset, then zoom with the wheel.
    page.locator("#zoom-reset").click()
    page.wait_for_function("+document.querySelector('#graph-svg').dataset.zoom === 1")
    box = page.locator("#graph-svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function("+document.querySelector('#graph-svg').dataset.zoom > 1.2")
    assert page.locator("#zoom-reset").is_visible()
    # The layer names stay in their column, level with their (zoomed) rows.
    page.wait_for_timeout(300)
    heads = page.evaluate("""() => [...document.querySelectorAll('#graph-svg .row-head')].map(
        (h) => {
          const label = h.querySelector('.row-label').getBoundingClientRect();
          const band = document.querySelector(
            `#graph-svg .row-band[data-layer="${h.dataset.layer}"]`).getBoundingClientRect();
          return [label.left, (label.top + label.bottom) / 2, (band.top + band.bottom) / 2];
        })""")
    left = page.locator("#graph-svg").bounding_box()["x"]
    for x, y_label, y_band in heads:
        assert left <= x < left + 100 and abs(y_label - y_band) < 3
    assert any(box["y"] <= y <= box["y"] + box["height"] for _, y, _ in heads)


def reachable(page: Page, selector: str) -> bool:
    """Whether the element is in view and nothing covers or clips its middle (a click there
    reaches it)."""
    return in_view(page, selector) and page.locator(selector).evaluate("""el => {
        const r = el.getBoundingClientRect();
        const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
        return hit !== null && el.contains(hit); }""")


def test_every_pin_can_be_unpinned_alone_and_the_title_stays_whole(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    ids = [n.id for n in graph.nodes[::7]][:4]
    open_page(page, site["url"] + f"/graphs/{key}?pins={','.join(ids)}")
    assert page.locator("#title").evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.locator("#pins button").count() == 4
    left = list(ids)
    while left:
        target = left[len(left) // 2]  # from the middle of the list, not only its end
        chip = f'#pins button[data-id="{target}"]'
        if not reachable(page, chip):
            page.locator("#pins-toggle").click()
        assert reachable(page, chip), target
        page.locator(chip).click()
        left.remove(target)
        assert state(page)["pins"] == left
        assert page.locator("#title").evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.locator("#pins-box").is_hidden()


def test_find_takes_ids_as_the_url_does_and_answers_beside_the_box(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    node = next(n for n in graph.nodes if n.channel < 100)
    open_page(page, site["url"] + f"/graphs/{key}")
    find = page.locator("#find")
    for text in (f"{node.layer}:{node.channel:03d}", f"{node.layer.upper()}:{node.channel}"):
        find.fill(text)
        find.press("Enter")
        assert state(page)["pins"] == [node.id], text
        assert page.locator("#find-error").is_hidden()
    find.fill("nowhere:1")
    find.press("Enter")
    message = page.locator("#find-error")
    assert "No neuron nowhere:1" in message.text_content()
    assert in_view(page, "#find-error") and page.locator("#error").is_hidden()
    box, under = find.bounding_box(), message.bounding_box()
    assert 0 <= under["y"] - (box["y"] + box["height"]) < 12  # right under the box
    assert under["x"] < box["x"] + box["width"] and box["x"] < under["x"] + under["width"]
    find.press("Backspace")  # typing again takes the message away
    assert message.is_hidden()


@pytest.mark.timing
def test_a_deletion_is_answered_within_seconds(site, browser):
    """Timing: a click in edit mode to its first numbers (the preview), once the editor is
    built; loosely (the figure itself goes in the notes)."""
    key = site["default"]
    graph = graph_of(site, key)
    page, errors = watched_page(browser)
    try:
        open_page(page, site["url"] + f"/graphs/{key}")
        page.wait_for_selector("html[data-editor=ready]", timeout=60_000)
        page.locator("#edit-mode").check()
        node = min((n for n in graph.nodes if n.group == "emphasized"),
                   key=lambda n: n.vulnerability or 0)  # one no other test deletes
        started = time.perf_counter()
        click_node(page, node.id)
        page.wait_for_selector(f"#edit-result[data-mask='{node.id}']", timeout=30_000)
        first = time.perf_counter() - started
        print(f"\na deletion to its first numbers {first:.2f} s ({graph.benign.n_images} "
              "images)")
        assert first < 5
        assert not errors, errors
    finally:
        page.context.close()


@pytest.mark.timing
def test_hover_stays_quick_when_tracing_ancestors_with_pins(site, page):
    """Printed for the record (the figures go in the notes); asserted loosely."""
    graph = site["ws"].load("synthetic-300")
    figures = {}
    for label, query in (("edges", ""), ("ancestors", "?trace=ancestors"),
                         ("ancestors + 4 pins", "?trace=ancestors&pins=" +
                          ",".join(n.id for n in graph.nodes[::75]))):
        open_page(page, site["url"] + "/graphs/synthetic-300" + query)
        times = sorted(hover_times(page))
        figures[label] = (times[len(times) // 2], times[-1])
    size = page.viewport_size
    print(f"\nhover with 300 nodes at {size['width']}x{size['height']}: " + ", ".join(
        f"{k} median {m:.0f} ms, max {x:.0f} ms" for k, (m, x) in figures.items()))
    assert figures["edges"][0] < 50 and all(m < 200 for m, _ in figures.values())


def test_the_whole_view_is_in_the_url_and_restored_on_reload(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")
    a, b, c = graph.nodes[0].id, graph.nodes[-1].id, graph.nodes[5].id
    click_node(page, a)
    click_node(page, b, modifiers=["Shift"])
    page.locator('#edge-mode input[value="change"]').check()
    page.select_option("#highlight", "excited")
    page.select_option("#trace", "ancestors")
    page.locator('#mask-mode input[value="mean"]').check()
    page.locator("#slider").focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.locator("#edit-mode").check()
    click_node(page, c)
    page.wait_for_function(f"location.search.includes('deleted={c}')")
    query = parse_qs(urlparse(page.url).query)
    assert query == {"k": ["1"], "edges": ["change"], "highlight": ["excited"],
                     "trace": ["ancestors"], "mode": ["mean"], "pins": [f"{a},{b}"],
                     "deleted": [c]}
    url = page.url
    before = state(page)
    fresh = page.context.new_page()
    open_page(fresh, url)
    assert state(fresh) == before
    assert fresh.locator("#highlight").input_value() == "excited"
    assert fresh.locator("#trace").input_value() == "ancestors"
    assert fresh.locator('#edge-mode input[value="change"]').is_checked()
    assert fresh.locator('#mask-mode input[value="mean"]').is_checked()
    assert fresh.locator("#slider").input_value() == "1"
    assert fresh.locator("#graph-svg .node.masked").count() == 1
    fresh.wait_for_selector(f"#edit-result[data-mask='{c}']", timeout=30_000)
    # One pin alone is the short node URL.
    fresh.locator("#unpin").click()
    click_node(fresh, a)  # edit mode is not part of the URL: a click pins
    fresh.wait_for_function(f"location.pathname.endsWith('/nodes/{a}')")
    fresh.close()


def test_back_and_forward_return_to_the_analyses_left_as_they_were(site, browser):
    page, errors = watched_page(browser)
    try:
        open_page(page, site["url"] + "/graphs/synthetic-8?k=1&edges=change")
        start = page.evaluate("history.length")
        # A change within one analysis rewrites its entry.
        page.select_option("#highlight", "activated")
        page.wait_for_function("location.search.includes('highlight=activated')")
        assert page.evaluate("history.length") == start
        # Another analysis gets an entry of its own; a change made just before is kept.
        page.select_option("#trace", "ancestors")
        page.select_option("#saved", "synthetic-30")
        page.wait_for_function("document.documentElement.dataset.key === 'synthetic-30'")
        assert urlparse(page.url).path == "/graphs/synthetic-30"
        assert page.evaluate("history.length") == start + 1
        page.go_back()
        page.wait_for_function("document.documentElement.dataset.key === 'synthetic-8'")
        assert urlparse(page.url).path == "/graphs/synthetic-8"
        assert parse_qs(urlparse(page.url).query) == {
            "k": ["1"], "edges": ["change"], "highlight": ["activated"], "trace": ["ancestors"]}
        view = state(page)
        assert (view["k"], view["edgeMode"], view["highlight"], view["trace"]) == (
            1, "change", "activated", "ancestors")
        assert page.locator("#highlight").input_value() == "activated"
        assert page.locator("#saved").input_value() == "synthetic-8"
        page.go_forward()
        page.wait_for_function("document.documentElement.dataset.key === 'synthetic-30'")
        assert urlparse(page.url).path == "/graphs/synthetic-30"
        assert page.locator("#saved").input_value() == "synthetic-30"
        assert page.evaluate("history.length") == start + 1
    finally:
        page.context.close()
    assert not errors, errors


def test_a_click_enlarges_pictures_and_examples_with_each_patch_class(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    node = graph.nodes[0]
    open_page(page, site["url"] + f"/graphs/{key}/nodes/{node.id}")
    page.locator("#details img.picture").click()
    page.wait_for_selector("#lightbox:not([hidden]) img.large.picture")
    page.wait_for_function("document.querySelector('#lightbox img.large').naturalWidth > 0")
    box = page.locator("#lightbox img.large").bounding_box()
    assert box["width"] >= 300 and in_view(page, "#lightbox img.large")
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").is_hidden()
    page.locator("#details img.examples").click()
    page.wait_for_selector("#lightbox ol.patches li")
    detail = httpx.get(f"{site['url']}/graphs/{key}/nodes/{node.id}.json", timeout=10).json()
    patches = detail["examples_info"]
    # The classes are the dataset's labels of those images (the bundled Fashion-MNIST).
    engine = site["app"].state.engine
    names = [engine.dataset.class_names[int(engine.dataset.labels[p["image"]])] for p in patches]
    assert [p["class_name"] for p in patches] == names
    shown = page.locator("#lightbox ol.patches .class").all_text_contents()
    assert shown == names and len(names) > 1
    values = [p["value"] for p in patches]
    assert values == sorted(values, reverse=True) and all(math.isfinite(v) for v in values)
    assert page.locator("#lightbox img.large.examples").bounding_box()["width"] >= 600
    page.locator("#lightbox-close").click()
    assert page.locator("#lightbox").is_hidden()


def test_a_neuron_card_shows_activation_change_beside_importance_and_the_groups_meaning(
        site, page):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")
    assert "attribution" in page.locator("#details .groups-meaning").text_content()
    assert "activation" in page.locator("#legend .groups-meaning").get_attribute("title")
    # An emphasized neuron that loses activation under attack: the card says so plainly.
    node = min((n for n in graph.nodes if n.group == "emphasized"),
               key=lambda n: n.activation[-1] - n.activation[0])
    page.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
    text = page.locator("#node-activation").text_content()
    a0, a1 = node.activation[0], node.activation[-1]
    assert "→" in text
    sign = "+" if a1 >= a0 else "−"
    assert f"({sign}{abs(round(100 * (a1 - a0) / abs(a0)))}%)" in text
    assert graph.target.name in page.locator("#node-importance").text_content()
    # Edge rows are buttons: a click pins the neuron at the other end (pin the card first, or
    # it follows the mouse away).
    click_node(page, node.id)
    page.mouse.move(2, 2)
    page.locator("#details ul.edges.incoming button.neuron").first.click()
    pinned = state(page)["pins"]
    assert len(pinned) == 1 and any(e.source == pinned[0] and e.target == node.id
                                    for e in graph.edges)


def test_a_defense_lists_and_rings_its_picks_then_draws_three_curves_and_applies(site, page):
    key = site["default"]
    open_page(page, site["url"] + f"/graphs/{key}")
    page.locator("#budget").fill("2")
    page.evaluate("""() => {  // what the page shows each time the search's state changes
      window.seen = [];
      new MutationObserver(() => window.seen.push({
        state: document.documentElement.dataset.defense,
        curves: [...document.querySelectorAll('#defense-chart .curve')].map(c => c.classList[1]),
        text: document.querySelector('#defense-status').textContent,
      })).observe(document.documentElement, {attributes: true, attributeFilter: ['data-defense']});
    }""")
    with page.expect_response(lambda r: r.url.endswith(f"/graphs/{key}/defense")
                              and r.request.method == "POST") as answer:
        page.locator("#defense").click()
    assert answer.value.status == 202
    assert answer.value.request.headers["content-type"] == "application/json"
    assert answer.value.request.post_data_json == {"budget": 2, "mode": "zero"}
    job_id = answer.value.json()["id"]
    page.wait_for_selector("#defense-box:not([hidden])")
    assert in_view(page, "#defense-box")
    page.wait_for_selector("html[data-defense=ready]", timeout=150_000)
    # The page drew the search's own result, as its job status on the server has it.
    status = httpx.get(f"{site['url']}/defenses/{job_id}.json", timeout=10).json()
    assert status["state"] == "done" and status["progress"] == 1
    # The suggestion came first, drawn alone while its baselines were measured.
    early = [s for s in page.evaluate("window.seen") if s["state"] == "suggested"]
    assert early and early[0]["curves"] == ["greedy"]
    assert "Measuring the baselines" in early[0]["text"]
    defense = status["result"]
    assert defense["complete"]
    greedy = defense["greedy"][-1]["mask"] if defense["greedy"] else []
    assert status["picks"] == greedy and 1 <= len(greedy) <= 2
    assert page.locator("#defense-picks button.neuron").all_text_contents() == greedy
    ringed = page.evaluate("[...document.querySelectorAll('#graph-svg .node.greedy')]"
                           ".map(el => el.dataset.id)")
    assert sorted(ringed) == sorted(greedy)
    assert page.locator("#defense-progress").is_hidden()
    assert page.locator("#defense-cancel").is_hidden()
    assert page.locator("#defense").is_enabled()
    for name, points in (("greedy", defense["greedy"]), ("random", defense["random"]),
                         ("emphasized", defense["top_emphasized"])):
        path = page.locator(f"#defense-chart .curve.{name} path")
        assert path.get_attribute("data-points") == str(len(points) + 1)  # from "before"
    assert page.locator("#defense-chart .axis-title").count() == 2
    assert in_view(page, "#defense-chart")
    page.locator("#defense-apply").click()
    page.wait_for_selector(f"#edit-result[data-mask='{','.join(greedy)}']", timeout=30_000)
    assert page.locator("#graph-svg .node.masked").count() == len(greedy)
    assert in_view(page, "#edit-result")


def test_a_pair_computing_is_named_over_the_graph_still_shown(site, page):
    key = site["default"]
    open_page(page, site["url"] + f"/graphs/{key}")
    pick_unsaved_pair(page, "Trouser", "Bag")
    page.click("#analyze")
    page.wait_for_selector("#pending:not([hidden])", timeout=10_000)
    text = page.locator("#pending").text_content()
    assert "Computing Trouser → Bag" in text and "still Sneaker → Sandal" in text
    assert in_view(page, "#pending")
    status = httpx.get(site["url"] + "/analyses.json",
                       params={"benign": "Trouser", "target": "Bag"}, timeout=10).json()
    httpx.post(f"{site['url']}/analyses/{status['key']}/cancel", json={}, timeout=10)
    page.wait_for_selector("#pending", state="hidden", timeout=30_000)


def test_screenshots_of_the_instrument(site, page):
    """Hover with the change view and a pathway, at both sizes; the card and legend in view."""
    key = site["default"]
    graph = graph_of(site, key)
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    open_page(page, site["url"] + f"/graphs/{key}?edges=change&highlight=changed")
    node = graph.nodes[len(graph.nodes) // 2]
    page.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
    for sel in ("#legend", "#node-id", "#importance-chart", "#graph-svg"):
        box = page.locator(sel).bounding_box()
        assert box and box["y"] < height and box["x"] + box["width"] <= width, sel
    assert in_view(page, "#legend")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"instrument-{width}x{height}.png"))
