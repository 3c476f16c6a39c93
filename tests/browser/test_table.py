"""The neuron table (the right panel's *table* tab, issue 25 item 6) in Chromium at 1280×800 and
1920×1080: one row per node of graph.json with its numbers; each column sorts as its rule says
(again: reversed; shared neurons' missing numbers last either way); the group boxes and the text
box filter; hovering a row highlights its node as hovering the node does, a click pins it, and in
"click deletes neurons" mode deletes it; pinned, hovered and deleted rows are marked; the rows
scroll inside the panel and the page never scrolls. Screenshots in ``test-artifacts/``."""

from __future__ import annotations

import pytest

from massif.schemas import Graph, Node
from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(240, func_only=True)  # the test alone, not the site's set-up
SIZES = [(1280, 800), (1920, 1080)]
GROUPS = ("suppressed", "shared", "emphasized")
ROW_IDS = "[...document.querySelectorAll('#neuron-rows tr')].map((tr) => tr.dataset.id)"


def relative(values: list[float], k: int) -> float | None:
    return (values[k] - values[0]) / abs(values[0]) if values[0] != 0 else None


def expected_order(graph: Graph, column: str, descending: bool, k: int) -> list[str]:
    """The rows' order by the rule web.md gives: stable over graph.json's order, no value last."""
    layer = {name: i for i, name in enumerate(graph.layers)}
    value = {
        "id": lambda n: layer[n.layer] * 1e6 + n.channel,
        "layer": lambda n: layer[n.layer],
        "group": lambda n: GROUPS.index(n.group),
        "vulnerability": lambda n: n.vulnerability,
        "flip": lambda n: n.flip_strength,
        "activation": lambda n: relative(n.activation, k),
        "importance": lambda n: n.importance_target[k] - n.importance_target[0],
    }[column]

    def key(n: Node):
        v = value(n)
        return (v is None, 0 if v is None else (-v if descending else v))
    return [n.id for n in sorted(graph.nodes, key=key)]


def page_scrolls(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollHeight > innerHeight + 1 || "
                         "document.scrollingElement.scrollWidth > innerWidth + 1")


def row(page, node_id: str):
    return page.locator(f'#neuron-rows tr[data-id="{node_id}"]')


def store(page, field: str):
    return page.evaluate(f"window.massif.store.get().{field}")


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_table_lists_sorts_filters_and_acts_on_the_graph(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    K = len(graph.attack.strengths)
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}")
        page.locator("#tab-table").click()
        page.wait_for_selector("#table-panel[data-rows]")
        assert page.locator("#tab-table").get_attribute("aria-selected") == "true"
        assert page.locator("#card").is_hidden() and page.locator("#images-panel").is_hidden()

        # One row per node, in the default order (layer by layer, graph.json's order within).
        assert page.evaluate(ROW_IDS) == expected_order(graph, "layer", False, K - 1)
        assert f"{len(graph.nodes)} of {len(graph.nodes)} neurons" in \
            page.locator("#table-count").text_content()
        node = next(n for n in graph.nodes if n.group == "emphasized")
        cells = row(page, node.id).locator("td").all_text_contents()
        pct = round(100 * relative(node.activation, K - 1))
        assert cells[0] == node.id and cells[1] == "▲" and len(cells) == 6
        assert row(page, node.id).locator("td.group").get_attribute("title") == "emphasized"
        assert float(cells[2]) == pytest.approx(node.vulnerability, abs=1e-3)
        assert float(cells[3]) == pytest.approx(node.flip_strength, abs=1e-3)
        assert cells[4] == ("+" if pct > 0 else "−" if pct < 0 else "") + f"{abs(pct)}%"
        shared = next(n for n in graph.nodes if n.group == "shared")
        assert row(page, shared.id).locator("td").all_text_contents()[1:4] == ["●", "–", "–"]
        # Every column's title says its scale or unit.
        titles = page.locator("#neuron-head button").evaluate_all("bs => bs.map(b => b.title)")
        assert "0–1" in titles[3] and "ε" in titles[4] and "percent" in titles[5] \
            and "logit" in titles[6]

        # Each column sorts by its rule; a second click reverses it.
        columns = ["layer", "id", "group", "vulnerability", "flip", "activation", "importance"]
        assert page.locator("#neuron-head button").evaluate_all(
            "bs => bs.map(b => b.dataset.key)") == columns
        for column in columns[1:] + columns[:1]:  # the layer last: it is the default order
            button = page.locator(f'#neuron-head button[data-key="{column}"]')
            first = column not in ("layer", "id", "group")  # numbers: largest first
            for descending in (first, not first):
                button.click()
                want = f"{column}:{'desc' if descending else 'asc'}"
                page.wait_for_selector(f"#table-panel[data-sort='{want}']")
                got = page.evaluate(ROW_IDS)
                assert got == expected_order(graph, column, descending, K - 1), want
        assert page.locator("#neuron-head th[aria-sort]").evaluate_all(  # the layer, reversed
            "ths => ths.map(th => th.getAttribute('aria-sort'))") == ["descending"]

        # The slider moves the change columns to its strength.
        page.locator('#neuron-head button[data-key="importance"]').click()
        page.wait_for_selector("#table-panel[data-sort='importance:desc']")
        page.locator("#slider").focus()
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.querySelector('#table-count').textContent"
                               f".includes('ε = {round(graph.attack.strengths[1], 3):g}')")
        assert page.evaluate(ROW_IDS) == expected_order(graph, "importance", True, 1)
        page.keyboard.press("End")

        # Filters: the group boxes and the text box.
        page.locator('#table-groups input[value="shared"]').uncheck()
        ids = page.evaluate(ROW_IDS)
        assert sorted(ids) == sorted(n.id for n in graph.nodes if n.group != "shared")
        layer = graph.layers[len(graph.layers) // 2]
        page.locator("#table-filter").fill(layer.upper())
        want = sorted(n.id for n in graph.nodes if n.group != "shared" and n.layer == layer)
        assert want and sorted(page.evaluate(ROW_IDS)) == want
        assert f"{len(want)} of {len(graph.nodes)} neurons" in \
            page.locator("#table-count").text_content()
        page.locator("#table-filter").fill("")
        page.locator('#table-groups input[value="shared"]').check()
        assert len(page.evaluate(ROW_IDS)) == len(graph.nodes)

        # Hovering a row highlights its node as hovering the node does.
        page.locator('#neuron-head button[data-key="vulnerability"]').click()
        top = page.evaluate(ROW_IDS)[:3]
        row(page, top[0]).hover()
        assert store(page, "hover") == top[0]
        page.wait_for_selector(f'#graph-top .node.hover[data-id="{top[0]}"]', state="attached")
        assert "hover" in row(page, top[0]).get_attribute("class").split()
        assert page.locator("#graph-veil.on").count() == 1
        assert page.locator("#card").is_hidden()  # not over the table under the pointer
        # ... and hovering the node marks its row and shows its card over the table.
        page.locator(f'#graph-svg .node[data-id="{top[1]}"]').hover()
        page.wait_for_selector("#card.overlay:not([hidden])")
        assert page.locator("#node-id").text_content() == top[1]
        assert "hover" in row(page, top[1]).get_attribute("class").split()
        page.mouse.move(2, 2)
        page.wait_for_selector("#card", state="hidden")

        # A click pins the row's node alone, shift-click adds one; the rows are marked.
        row(page, top[0]).click()
        assert store(page, "pins") == [top[0]]
        row(page, top[1]).click(modifiers=["Shift"])
        assert store(page, "pins") == top[:2]
        for node_id in top[:2]:
            assert "pinned" in row(page, node_id).get_attribute("class").split()
            assert page.locator(f'#graph-svg .node.pinned[data-id="{node_id}"]').count() == 1
        assert "pinned" not in row(page, top[2]).get_attribute("class").split()
        row(page, top[2]).hover()
        assert not page_scrolls(page)
        for selector in ("#panel-tabs", "#table-groups", "#table-filter", "#table-scroll"):
            assert in_view(page, selector), selector
        for column in columns:
            assert in_view(page, f'#neuron-head button[data-key="{column}"]'), column
        assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)"  # no sideways scroll
                             "(document.querySelector('#table-scroll'))")
        scroll = page.locator("#table-scroll").bounding_box()
        assert scroll["y"] + scroll["height"] <= height + 1
        if len(graph.nodes) * 18 > scroll["height"]:  # more rows than fit: they scroll inside
            assert page.evaluate("(e => e.scrollHeight > e.clientHeight)"
                                 "(document.querySelector('#table-scroll'))")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"table-{width}x{height}.png"))
        row(page, top[0]).click()  # a click on the pin alone: only it stays pinned
        assert store(page, "pins") == [top[0]]
        row(page, top[0]).click()  # and again: unpinned
        assert store(page, "pins") == []

        # In "click deletes neurons" mode a click deletes the node, as on the graph.
        page.locator("#edit-mode").check()
        group = {n.id: n.group for n in graph.nodes}
        target = next((i for i in top if group[i] == "emphasized"), top[0])
        row(page, target).click()
        assert store(page, "masked") == [target] and store(page, "pins") == []
        assert "masked" in row(page, target).get_attribute("class").split()
        assert page.locator("#graph-svg .node.masked").count() == 1
        page.wait_for_selector(f"#edit-result[data-mask='{target}']", timeout=60_000)
        page.mouse.move(2, 2)
        page.screenshot(path=str(ARTIFACTS / f"table-deleted-{width}x{height}.png"))
        assert not page_scrolls(page)
        row(page, target).click()  # again: restored
        assert store(page, "masked") == []
        assert "masked" not in row(page, target).get_attribute("class").split()

        # Back to the neurons tab: the card's place, the table hidden.
        page.locator("#tab-neuron").click()
        assert page.locator("#table-panel").is_hidden() and page.locator("#card").is_visible()
    finally:
        page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_tab_sort_groups_and_filter_are_in_the_url(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    K = len(graph.attack.strengths)
    base = site["url"] + f"/graphs/{key}"
    page, errors = watched_page(browser, width, height)

    def shown(column: str, descending: bool, groups: set[str], text: str) -> list[str]:
        keep = {n.id for n in graph.nodes if n.group in groups and text.lower() in n.id.lower()}
        return [i for i in expected_order(graph, column, descending, K - 1) if i in keep]

    def boxes() -> list[str]:
        return page.locator("#table-groups input:checked").evaluate_all(
            "bs => bs.map(b => b.value)")

    try:
        # A URL's table state is shown, and written back as it came.
        layer = graph.layers[1]
        url = (f"{base}?tab=table&sort=vulnerability:desc&groups=suppressed,emphasized"
               f"&filter={layer}")
        open_page(page, url)
        assert page.url == url
        assert page.locator("#tab-table").get_attribute("aria-selected") == "true"
        assert page.locator("#table-panel").is_visible() and page.locator("#card").is_hidden()
        assert page.locator("#table-panel").get_attribute("data-sort") == "vulnerability:desc"
        assert boxes() == ["suppressed", "emphasized"]
        assert page.locator("#table-filter").input_value() == layer
        want = shown("vulnerability", True, {"suppressed", "emphasized"}, layer)
        assert want and page.evaluate(ROW_IDS) == want

        # Changes go into the URL; opening that URL afresh shows the same table.
        page.locator('#neuron-head button[data-key="flip"]').click()  # a number: largest first
        page.locator('#table-groups input[value="emphasized"]').uncheck()
        page.locator('#table-groups input[value="shared"]').check()
        page.locator("#table-filter").fill(" 4A:")  # as typed: a space, any case
        page.wait_for_function(
            "() => new URLSearchParams(location.search).get('filter') === ' 4A:'")
        query = "?tab=table&sort=flip:desc&groups=suppressed,shared&filter=+4A:"
        assert page.url == base + query
        rows = page.evaluate(ROW_IDS)
        assert rows and rows == shown("flip", True, {"suppressed", "shared"}, "4a:")
        open_page(page, base + query)
        assert page.url == base + query
        assert page.evaluate(ROW_IDS) == rows and boxes() == ["suppressed", "shared"]
        assert page.locator("#table-filter").input_value() == " 4A:"
        assert page.locator("#table-panel").get_attribute("data-sort") == "flip:desc"

        # No group ticked is a state too; the defaults leave the URL.
        page.locator('#table-groups input[value="suppressed"]').uncheck()
        page.locator('#table-groups input[value="shared"]').uncheck()
        page.wait_for_function("() => new URLSearchParams(location.search).get('groups') === ''")
        assert page.evaluate(ROW_IDS) == []
        open_page(page, page.url)
        assert boxes() == [] and page.evaluate(ROW_IDS) == []
        for group in GROUPS:
            page.locator(f'#table-groups input[value="{group}"]').check()
        page.locator("#table-filter").fill("")
        page.locator('#neuron-head button[data-key="layer"]').click()  # layer, from the first
        page.locator("#tab-neuron").click()
        page.wait_for_function("() => location.search === ''")
        assert page.url == base

        # The images tab without an image chosen is kept too.
        open_page(page, base + "?tab=images")
        assert page.url == base + "?tab=images"
        assert page.locator("#images-panel").is_visible()
        assert page.locator("#tab-images").get_attribute("aria-selected") == "true"
    finally:
        page.context.close()
    assert not errors, errors


def test_a_bad_table_state_in_the_url_is_a_plain_message(site, page):
    key = site["default"]
    open_page(page, site["url"] + f"/graphs/{key}?tab=list&sort=vulnerability:up"
              "&groups=shared,odd&top=2")
    message = page.locator("#error").text_content()
    assert "tab=list is not one of neuron, images, table." in message
    assert "sort=vulnerability:up is not a column" in message and ":asc or :desc" in message
    assert "groups=shared,odd: odd is not one of suppressed, shared, emphasized." in message
    assert in_view(page, "#error")
    # the rest is shown at its defaults, and the URL drops what it could not read
    assert page.locator("#tab-neuron").get_attribute("aria-selected") == "true"
    assert page.url == site["url"] + f"/graphs/{key}"
    page.locator("#tab-table").click()
    page.wait_for_selector("#table-panel[data-sort='layer:asc']")
    assert len(page.evaluate(ROW_IDS)) == len(graph_of(site, key).nodes)
