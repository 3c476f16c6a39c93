"""What a user just did, and the card, in view without scrolling the page (issue 25, item 3), at
1280×800 and 1920×1080: after deleting neurons the results and the card of a hovered neuron are
both in the window (the results box takes at most about half the panel and scrolls inside; a
click on a result's title folds it), the card shows on hover in the images tab too, and the
page itself never scrolls. Screenshots in ``test-artifacts/``."""

from __future__ import annotations

import pytest

from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(240, func_only=True)
SIZES = [(1280, 800), (1920, 1080)]


def page_scrolls(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollHeight > innerHeight + 1 || "
                         "document.scrollingElement.scrollWidth > innerWidth + 1")


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_results_and_the_hovered_card_are_in_view_in_both_tabs(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    deleted = [n.id for n in graph.nodes if n.group == "emphasized"][:3]
    hovered = next(n.id for n in graph.nodes if n.group == "suppressed")
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}?deleted={','.join(deleted)}")
        page.wait_for_selector(f"#edit-result[data-mask='{','.join(deleted)}']", timeout=60_000)
        # a long results box: the deletion's numbers with a tall block under them, as a defense
        # and curves would add
        page.evaluate("""() => { const box = document.querySelector('#defense-box');
            box.hidden = false; document.querySelector('#results').hidden = false;
            document.querySelector('#defense-status').style.height = '700px'; }""")
        page.locator(f'#graph-svg .node[data-id="{hovered}"]').hover()
        page.wait_for_function(f"document.querySelector('#node-id')?.textContent === '{hovered}'")
        for selector in ("#node-id", "#node-vulnerability", "#edit-box h2", "#edit-result",
                         "#panel-tabs"):
            assert in_view(page, selector), selector
        results = page.locator("#results").bounding_box()
        assert results["height"] <= 0.5 * (height - 34) + 2  # at most half the panel
        assert not page_scrolls(page)
        page.screenshot(path=str(ARTIFACTS / f"in-view-results-{width}x{height}.png"))

        # a result folds to its title, and unfolds
        page.locator("#edit-box h2").click()
        assert page.locator("#edit-result").is_hidden() and in_view(page, "#edit-box h2")
        assert page.locator("#edit-box h2").get_attribute("aria-expanded") == "false"
        page.locator("#edit-box h2").click()
        assert page.locator("#edit-result").is_visible()

        # the images tab: hovering a node shows its card over the images, leaving hides it
        page.locator("#tab-images").click()
        page.wait_for_selector("#images-panel:not([hidden])")
        page.mouse.move(2, 2)
        assert page.locator("#card").is_hidden()
        page.locator(f'#graph-svg .node[data-id="{hovered}"]').hover()
        page.wait_for_selector("#card.overlay:not([hidden])")
        assert page.locator("#node-id").text_content() == hovered
        for selector in ("#node-id", "#node-vulnerability", "#panel-tabs"):
            assert in_view(page, selector), selector
        page.screenshot(path=str(ARTIFACTS / f"in-view-images-hover-{width}x{height}.png"))
        page.mouse.move(2, 2)
        page.wait_for_selector("#card", state="hidden")
        assert page.locator("#images-panel").is_visible()
        assert not page_scrolls(page)
    finally:
        page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_many_deletions_leave_the_view_controls_in_view(site, browser, width, height):
    key = site["default"]
    graph = graph_of(site, key)
    deleted = [n.id for n in graph.nodes][:14]
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, site["url"] + f"/graphs/{key}?deleted={','.join(deleted)}")
        page.wait_for_selector("#masked li >> nth=13", state="attached")
        # the list scrolls in its own box; the strength and the deletion controls stay put
        box = page.locator("#masked").bounding_box()
        assert box["height"] <= 70
        for selector in ("#slider", "#asr", "#edit-mode", "#masked", "#mask-clear"):
            assert in_view(page, selector), selector
        asr = page.locator("#asr").bounding_box()["height"]
        page.locator("#slider").focus()
        for _ in range(3):  # the ASR line keeps its height as the slider moves
            page.keyboard.press("ArrowLeft")
            assert page.locator("#asr").bounding_box()["height"] == asr
        assert not page_scrolls(page)
        page.screenshot(path=str(ARTIFACTS / f"in-view-deletions-{width}x{height}.png"))
    finally:
        page.context.close()
    assert not errors, errors
