"""The page's export menu (issue 25, item 1), in Chromium against the real server: the graph as
shown (SVG, PNG) with its legend, strength, pins, pathway and deletions, and its numbers (JSON,
CSV) equal to what ``massif.export.numbers`` computes for the same view in Python; an empty view
says there is nothing to export. Screenshots of the open menu in ``test-artifacts/``."""

from __future__ import annotations

import csv
import io
import json
import struct
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import Page

from massif.export import Numbers, numbers
from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(240, func_only=True)
SIZES = [(1280, 800), (1920, 1080)]
SVG = "{http://www.w3.org/2000/svg}"


def save(page: Page, what: str):
    """Click the menu's `what` button; the download."""
    if not page.locator("#export-menu").evaluate("m => m.matches(':popover-open')"):
        page.locator("#export-toggle").click()
    with page.expect_download(timeout=60_000) as download:
        page.locator(f'#export-menu button[data-export="{what}"]').click()
    return download.value


def close(a: float | int | None, b: float | int | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_graph_as_shown_and_its_numbers_are_exported(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    k = 2
    pinned = next(n.id for n in graph.nodes if n.group == "emphasized")
    deleted = next(n.id for n in graph.nodes if n.group == "suppressed")
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}/nodes/{pinned}?k={k}&deleted={deleted}"
                  "&highlight=changed")
        page.wait_for_selector(f"#edit-result[data-mask='{deleted}']", timeout=60_000)
        page.locator("#export-toggle").click()
        assert in_view(page, "#export-menu")
        page.screenshot(path=str(ARTIFACTS / f"export-menu-{width}x{height}.png"))

        # The figure: every node drawn, the deleted one crossed, the pin framed, the legend
        # naming the strength, the pin and the deletion, pictures inside, group marks for print.
        svg_text = save(page, "svg").path().read_text()
        root = ET.fromstring(svg_text)
        nodes = [g for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "").split()
                 and g.get("data-id")]
        assert {g.get("data-id") for g in nodes} == {n.id for n in graph.nodes}
        masked = [g.get("data-id") for g in nodes if "masked" in g.get("class").split()]
        assert deleted in masked
        assert any("pin" in g.get("class").split() and g.get("data-id") == pinned for g in nodes)
        assert any("on-path" in g.get("class").split() for g in nodes)
        legend = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
        eps = graph.attack.strengths[k]
        assert f"ε = {eps:g}" in legend and pinned in legend and deleted in legend
        assert "suppressed: benign graph only" in legend and "pathway" in legend
        hrefs = [i.get("href") for i in root.iter(f"{SVG}image")]
        assert hrefs and all(h.startswith("data:image/png;base64,") for h in hrefs)
        marks = [t for t in root.iter(f"{SVG}text") if "bw-mark" in (t.get("class") or "")]
        assert len(marks) >= len(graph.nodes)
        assert "Helvetica" in svg_text
        (ARTIFACTS / f"export-{width}x{height}.svg").write_text(svg_text)

        png = save(page, "png").path().read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", png[16:24])
        assert w == 2 * int(root.get("width")) and h == 2 * int(root.get("height"))
        (ARTIFACTS / f"export-{width}x{height}.png").write_bytes(png)

        # The numbers: the format massif.export writes, equal to Python's for this view.
        got = Numbers.model_validate(json.loads(save(page, "json").path().read_text()))
        want = numbers(graph, key=key, k=k, pins=[pinned], masked=[deleted], highlight="changed")
        assert got.view == want.view
        for table in ("nodes", "edges", "asr"):
            rows, expected = getattr(got, table), getattr(want, table)
            assert len(rows) == len(expected)
            for a, b in zip(rows, expected):
                assert a.keys() == b.keys()
                assert all(close(a[c], b[c]) if isinstance(b[c], float) else a[c] == b[c]
                           for c in b), (a, b)
        assert got.deletion is not None and got.deletion["mask"] == [deleted]
        assert got.defense is None

        for name in ("nodes.csv", "edges.csv", "asr.csv", "deletion.csv"):
            text = save(page, name).path().read_text()
            rows = list(csv.DictReader(io.StringIO(text)))
            expected = list(csv.DictReader(io.StringIO(got.csv()[name])))
            assert [r.keys() for r in rows] == [r.keys() for r in expected]
            for a, b in zip(rows, expected):
                for c in b:
                    try:
                        assert close(float(a[c]), float(b[c])), (name, c, a, b)
                    except ValueError:
                        assert a[c] == b[c], (name, c, a, b)
        # no defense ran: its table cannot be saved, and the button says why
        button = page.locator('#export-menu button[data-export="defense.csv"]')
        assert button.is_disabled() and "defense" in button.get_attribute("title")
        assert in_view(page, "#export-message")
    finally:
        page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_an_empty_view_says_there_is_nothing_to_export(site, browser, width, height):
    page, errors = watched_page(browser, width, height)
    try:
        page.goto(site["url"] + "/graphs/no-such-analysis")
        page.wait_for_selector("html[data-state=error]", timeout=30_000)
        page.locator("#export-toggle").click()
        message = page.locator("#export-message")
        assert message.is_visible() and in_view(page, "#export-message")
        assert "Nothing to export" in message.text_content()
        assert page.locator("#export-menu button[data-export]:enabled").count() == 0
        page.screenshot(path=str(ARTIFACTS / f"export-empty-{width}x{height}.png"))
    finally:
        page.context.close()
    # the missing analysis is answered 404, which the browser logs as a console error
    assert all("404" in e for e in errors), errors
