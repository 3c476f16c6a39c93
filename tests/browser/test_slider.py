"""The strength slider changes the picture (issue 25, item 4), in Chromium against the real
server: edges of neurons not flipped at the slider's ε fade with them (the legend says so), and
no layer is marked as the divergence layer where every layer reads 0% crossed."""

from __future__ import annotations

import pytest

from tests.helpers.browser import graph_of, open_page
from tests.helpers.synthetic import synthetic_graph

pytestmark = pytest.mark.timeout(180, func_only=True)


def faded_edges(page) -> set[tuple[str, str]]:
    return {tuple(e) for e in page.evaluate(
        "[...document.querySelectorAll('#graph-svg .edge.faded')]"
        ".map(e => [e.dataset.source, e.dataset.target])")}


def test_edges_fade_with_their_nodes_as_the_slider_moves(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    K = graph.attack.strengths
    for k in (1, len(K) - 1):
        open_page(page, site["url"] + f"/graphs/{key}?k={k}")
        unflipped = {n.id for n in graph.nodes if n.group != "shared" and
                     not (n.flip_strength is not None and n.flip_strength <= K[k] + 1e-9)}
        want = {(e.source, e.target) for e in graph.edges
                if e.source in unflipped or e.target in unflipped}
        assert faded_edges(page) == want
        if k == 1:
            assert want  # at a weak strength most neurons have not flipped: their edges fade
        opacity = page.evaluate("[...document.querySelectorAll('#graph-svg .edge.faded')]"
                                ".map(e => +getComputedStyle(e).strokeOpacity)")
        assert all(o < 0.2 for o in opacity)
    assert "not flipped at this strength, with its edges" in page.locator("#legend").text_content()


def test_no_divergence_mark_where_nothing_reads_as_crossed(site, page):
    graph = synthetic_graph(layers=4, per_layer=6, seed=7)
    graph.metrics.divergence.crossed[1] = [0.001, 0.002, 0.003, 0.004]  # all read 0%
    site["ws"].save(graph, "hardly-crossed")
    open_page(page, site["url"] + "/graphs/hardly-crossed?k=1")
    texts = page.locator("#graph-svg .crossed-text").all_text_contents()
    assert texts and all(t == "0% crossed" for t in texts)
    assert "".join(page.locator("#graph-svg .divergence-tag").all_text_contents()) == ""
    assert page.locator("#graph-svg .row-band.divergence").count() == 0
    open_page(page, site["url"] + "/graphs/hardly-crossed?k=3")  # crossed at last: marked
    assert "◆ divergence" in "".join(page.locator("#graph-svg .divergence-tag").all_text_contents())


def test_highlighted_edges_stay_right_of_the_layer_names_when_zoomed(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    node = graph.nodes[len(graph.nodes) // 2].id
    open_page(page, site["url"] + f"/graphs/{key}/nodes/{node}?trace=ancestors")
    box = page.locator("#graph-svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(6):
        page.mouse.wheel(0, -400)  # zoom in: the traced edges reach past the names' column
    page.wait_for_function("+document.querySelector('#graph-svg').dataset.zoom > 2")
    label = page.evaluate("document.querySelector('#graph-svg .label-column').getBBox().width")
    clip = page.evaluate("getComputedStyle(document.querySelector('#graph-top')).clipPath")
    assert clip == f"inset(0px 0px 0px {label:g}px)"
