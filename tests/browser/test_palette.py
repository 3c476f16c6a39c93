"""Colours (issue 25 item 5) in Chromium: the colour-blind-safe palette (View, Colours;
``palette=cb`` in the URL) colours the node frames, the legend, the card, the table and the
exported figure, its three groups apart in hue and in lightness; every frame has its group's hue
and lightness, as the legend's swatch (emphasized frames were red, blended toward purple); the
change view's edges use a colour pair no group uses; a pinned node keeps its group's colour;
the palette makes the round trip through the URL. Screenshots at 1280×800 and 1920×1080."""

from __future__ import annotations

import math

import pytest

from tests.helpers.browser import ARTIFACTS, graph_of, open_page, watched_page

pytestmark = pytest.mark.timeout(240, func_only=True)  # the test alone, not the site's set-up
SIZES = [(1280, 800), (1920, 1080)]
GROUPS = ("suppressed", "shared", "emphasized")
# docs/web.md, Colours: the two palettes, the change view's pair and the pins' ring.
PALETTES = {
    "default": {"suppressed": "#2c7bb6", "shared": "#8856a7", "emphasized": "#f1852b"},
    "cb": {"suppressed": "#00446f", "shared": "#0f8a7d", "emphasized": "#e69f00"},
}
EDGES = {"default": ("#3d86bd", "#e8822a"), "cb": ("#00446f", "#e69f00")}
LOST, GAINED, PIN = "#a49ae8", "#6d2a3a", "#f0e442"
SWATCHES = ("[...document.querySelectorAll('#legend .item .swatch')].slice(0, 3)"
            ".map((s) => getComputedStyle(s).backgroundColor)")
BADGE = "getComputedStyle(document.querySelector('#details .badge')).backgroundColor"
FRAMES = """[...document.querySelectorAll('#graph-svg .node')].map((el) =>
    [el.dataset.id, getComputedStyle(el.querySelector('rect.frame')).stroke])"""


def rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' or 'rgb(r, g, b)' as three integers."""
    if color.startswith("#"):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(v)) for v in color[color.index("(") + 1:-1].split(",")[:3])


def lch(color: str) -> tuple[float, float, float]:
    """CIE L*, C*, h° (D65) of an sRGB colour."""
    lin = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4
           for c in rgb(color)]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in (x, y, z)]
    L, a, b = 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    return L, math.hypot(a, b), math.degrees(math.atan2(b, a)) % 360


def hue_gap(a: float, b: float) -> float:
    return min(abs(a - b), 360 - abs(a - b))


def frames(page) -> dict[str, str]:
    return dict(page.evaluate(FRAMES))


def check_frames(page, graph, palette: str) -> None:
    """Every frame has its group's hue and lightness (vulnerability only pales it); shared
    frames and the most vulnerable ones have the group's colour exactly."""
    colours = PALETTES[palette]
    drawn = frames(page)
    exact = {g: 0 for g in GROUPS}
    for node in graph.nodes:
        stroke, want = drawn[node.id], colours[node.group]
        L, C, h = lch(stroke)
        L0, C0, h0 = lch(want)
        assert abs(L - L0) < 2.5 and hue_gap(h, h0) < 5 and C <= C0 + 1, (node.id, stroke, want)
        if node.vulnerability in (None, 1.0):
            assert rgb(stroke) == rgb(want), (node.id, stroke, want)
            exact[node.group] += 1
    assert all(exact.values()), exact


def test_frames_have_the_legend_colour_of_their_group(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}")
    assert page.locator("#palette").input_value() == "default"
    check_frames(page, graph, "default")
    # The legend's swatches are the groups' colours.
    swatches = page.evaluate(SWATCHES)
    assert [rgb(s) for s in swatches] == [rgb(PALETTES["default"][g]) for g in GROUPS]


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_colour_blind_palette_everywhere(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}?palette=cb")
        assert page.locator("#palette").input_value() == "cb"
        assert page.locator("html").get_attribute("data-palette") == "cb"
        check_frames(page, graph, "cb")
        # Apart pairwise, in lightness too (greyscale print): at least 15 L* apart.
        lights = sorted(lch(c)[0] for c in PALETTES["cb"].values())
        assert min(b - a for a, b in zip(lights, lights[1:])) >= 15
        swatches = page.evaluate(SWATCHES)
        assert [rgb(s) for s in swatches] == [rgb(PALETTES["cb"][g]) for g in GROUPS]
        assert len({rgb(s) for s in swatches}) == 3
        edge = page.evaluate("getComputedStyle(document.querySelector('#graph-svg .edge')).stroke")
        assert rgb(edge) == rgb(EDGES["cb"][1])  # attacked edges: the attacked graph's colour

        # The card's badge and the table's group marks: the node's frame colour.
        drawn = frames(page)
        node = next(n for n in graph.nodes if n.group == "emphasized")
        page.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
        page.wait_for_function("id => document.querySelector('#node-id')?.textContent === id",
                               arg=node.id)
        badge = page.evaluate(BADGE)
        assert rgb(badge) == rgb(drawn[node.id])
        page.mouse.move(2, 2)
        page.locator("#tab-table").click()
        page.wait_for_selector("#table-panel[data-rows]")
        mark = page.evaluate("id => getComputedStyle(document.querySelector("
                             "`#neuron-rows tr[data-id=\"${id}\"] .group-mark`)).color", node.id)
        assert rgb(mark) == rgb(drawn[node.id])
        page.locator("#tab-neuron").click()

        # The exported figure is drawn in the palette shown.
        svg = page.evaluate("async () => (await import('/static/js/export.js'))"
                            ".figureSvg(window.massif.store.get())")
        for colour in PALETTES["cb"].values():
            assert f'fill="{colour}"' in svg  # the figure legend's swatches
        for colour in PALETTES["default"].values():
            assert f'fill="{colour}"' not in svg and f'stroke="{colour}"' not in svg

        # The focus ring reads on the palette too.
        page.locator("#graph-svg").focus()
        page.keyboard.press("ArrowUp")
        page.wait_for_selector("#graph-top .focus-ring", state="visible")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"palette-cb-{width}x{height}.png"))
    finally:
        page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("palette", ["default", "cb"])
def test_the_change_view_has_colours_of_its_own(site, page, palette):
    key = site["default"]
    graph = graph_of(site, key)
    open_page(page, site["url"] + f"/graphs/{key}?edges=change&top=all&palette={palette}")
    strokes = page.evaluate("""[...document.querySelectorAll('#graph-svg .edge')].map((el) =>
        [el.dataset.source, el.dataset.target, getComputedStyle(el).stroke])""")
    assert len(strokes) == len(graph.edges)
    taken = {rgb(c) for p in PALETTES.values() for c in p.values()} | \
        {rgb(c) for pair in EDGES.values() for c in pair}
    assert not {rgb(s) for _, _, s in strokes} & taken
    # The largest change has an end's colour: wine where gained, lavender where lost.
    change = {(e.source, e.target): e.influence_attacked - e.influence_benign for e in graph.edges}
    top = max(change, key=lambda k: abs(change[k]))
    stroke = next(s for a, b, s in strokes if (a, b) == top)
    assert rgb(stroke) == rgb(GAINED if change[top] > 0 else LOST)
    legend = page.locator("#legend .edges-change").text_content()
    assert "lost (lavender)" in legend and "gained (wine)" in legend


@pytest.mark.parametrize("palette", ["default", "cb"])
def test_a_pinned_node_keeps_its_group_colour(site, page, palette):
    key = site["default"]
    graph = graph_of(site, key)
    node = next(n for n in graph.nodes if n.group == "shared")
    open_page(page, site["url"] + f"/graphs/{key}/nodes/{node.id}?palette={palette}")
    copy = page.locator(f'#graph-top .node.pin[data-id="{node.id}"]')
    stroke = copy.locator("rect.frame").evaluate("el => getComputedStyle(el).stroke")
    assert rgb(stroke) == rgb(PALETTES[palette]["shared"])
    ring = copy.locator(".pin-ring rect.fill").evaluate("el => getComputedStyle(el).stroke")
    assert rgb(ring) == rgb(PIN)
    assert rgb(PIN) not in {rgb(c) for p in PALETTES.values() for c in p.values()}
    assert page.locator("#legend .pin-swatch").count() == 1


def test_the_palette_round_trip_through_the_url(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    shared = next(n for n in graph.nodes if n.group == "shared").id
    open_page(page, site["url"] + f"/graphs/{key}")
    page.select_option("#palette", "cb")
    page.wait_for_url(lambda url: url.endswith(f"/graphs/{key}?palette=cb"))
    assert rgb(frames(page)[shared]) == rgb(PALETTES["cb"]["shared"])
    page.reload()
    page.wait_for_selector("html[data-state=ready]")
    assert page.locator("#palette").input_value() == "cb"
    assert rgb(frames(page)[shared]) == rgb(PALETTES["cb"]["shared"])
    page.select_option("#palette", "default")
    page.wait_for_url(lambda url: url.endswith(f"/graphs/{key}"))
    assert rgb(frames(page)[shared]) == rgb(PALETTES["default"]["shared"])
    open_page(page, site["url"] + f"/graphs/{key}?palette=grey")
    assert "palette=grey is not one of default, cb" in page.locator("#error").text_content()
    assert page.locator("#palette").input_value() == "default"
