"""One image's path on the page (the right panel's images tab), in Chromium at 1280×800: the
gallery is the server's, in each of its sort orders; a click shows the image's pictures,
predictions and crossing layer and puts its activations on the nodes, the slider moves them,
and the URL keeps the image."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from massif.edit.one_image import Gallery, ImageDetail
from tests.helpers.browser import ARTIFACTS, in_view, open_page

pytestmark = pytest.mark.timeout(180, func_only=True)  # the test alone, not the site's set-up


def test_gallery_click_shows_the_image_and_its_activations(site, page):
    key, url = site["default"], site["url"]
    page.goto(f"{url}/graphs/{key}")
    page.wait_for_selector("html[data-state=ready]")
    page.click("#tab-images")
    page.wait_for_selector("#gallery[data-k] .tile", timeout=90_000)
    gallery = Gallery.model_validate(httpx.post(f"{url}/graphs/{key}/images", json={},
                                                timeout=60).json())
    tiles = page.locator("#gallery .tile")
    assert tiles.count() == len(gallery.items)
    # Flipped first: the successes, then the rest.
    classes = page.evaluate("[...document.querySelectorAll('#gallery .tile')]"
                            ".map((t) => [+t.dataset.position, t.className])")
    by_position = {i.position: i for i in gallery.items}
    flags = [by_position[p].success for p, _ in classes]
    assert flags == sorted(flags, reverse=True) and any(flags)
    for p, cls in classes:
        want = ("success" if by_position[p].success else
                "missed" if by_position[p].correct else "wrong")
        assert want in cls.split(), (p, cls)
    status = page.locator("#gallery-status").text_content()
    assert f"{gallery.n_success} of {gallery.n_correct} flipped" in status
    page.wait_for_function("document.querySelector('#gallery .tile img').naturalWidth > 0")

    # Click the first tile: the detail, in view; the nodes carry the image's activations.
    position = classes[0][0]
    tiles.first.click()
    page.wait_for_selector(f"#image-detail[data-position='{position}']", timeout=60_000)
    detail = ImageDetail.model_validate(httpx.post(f"{url}/graphs/{key}/images/{position}",
                                                   json={}, timeout=60).json())
    big_k = len(detail.strengths) - 1
    assert in_view(page, "#image-detail")
    assert page.locator("#image-detail").get_attribute("data-crossing") == (
        detail.crossing[big_k] or "")
    assert detail.predictions[big_k].name in page.locator("#image-detail .verdict").first \
        .text_content()
    assert page.locator("#graph-svg").get_attribute("data-image") == (
        f"{position}@{big_k}:{detail.crossing[big_k] or ''}")
    node = next(iter(detail.activations))
    bar = page.locator(f"#graph-svg .node[data-id='{node}'] rect.bar-attacked")
    assert bar.is_visible() or float(bar.get_attribute("width")) == 0
    page.wait_for_function(f"location.search.includes('image={position}')")  # written at rest
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "images-1280x800.png"))

    # The slider moves the picture, the crossing and the gallery to its strength.
    page.locator("#slider").focus()
    page.keyboard.press("Home")
    page.wait_for_function("document.querySelector('#gallery').dataset.k === '0'")
    assert page.locator("#graph-svg").get_attribute("data-image") == (
        f"{position}@0:{detail.crossing[0] or ''}")
    assert page.locator("#image-detail img[alt='attacked image']").get_attribute("src") == \
        detail.attacked_pictures[0]

    # A reload keeps the image and the tab.
    page.reload()
    page.wait_for_selector(f"#image-detail[data-position='{position}']", timeout=60_000)
    assert page.locator("#tab-images").get_attribute("aria-selected") == "true"

    # Back to the whole class.
    page.click("#image-detail button.close")
    page.wait_for_function("document.querySelector('#graph-svg').dataset.image === ''")
    page.wait_for_function("!location.search.includes('image=')")


def test_the_gallery_sorts_flipped_first_by_confidence_or_in_dataset_order(site, page):
    """Each of the gallery's sort orders (docs/web.md) puts the tiles in the order its rule
    gives from the server's gallery: flipped first (then correct, then by the attacked
    prediction's probability), by that probability alone, or by position."""
    key, url = site["default"], site["url"]
    open_page(page, f"{url}/graphs/{key}")
    page.click("#tab-images")
    page.wait_for_selector("#gallery[data-k] .tile", timeout=90_000)
    gallery = Gallery.model_validate(httpx.post(f"{url}/graphs/{key}/images", json={},
                                                timeout=60).json())
    items = gallery.items
    expected = {
        "flipped": sorted(items, key=lambda i: (-i.success, -i.correct, -i.attacked_p,
                                                i.position)),
        "confidence": sorted(items, key=lambda i: (-i.attacked_p, i.position)),
        "position": sorted(items, key=lambda i: i.position),
    }
    options = page.locator("#gallery-sort option").evaluate_all("os => os.map(o => o.value)")
    assert options == list(expected)  # a new order needs its rule here
    assert page.locator("#gallery-sort").input_value() == "flipped"  # the default
    shown = "[...document.querySelectorAll('#gallery .tile')].map(t => +t.dataset.position)"
    for how in ["confidence", "position", "flipped"]:
        page.select_option("#gallery-sort", how)
        want = [i.position for i in expected[how]]
        with contextlib.suppress(PlaywrightTimeout):  # (then the assert says how it differs)
            page.wait_for_function(f"want => ({shown}).join() === want.join()", arg=want,
                                   timeout=10_000)
        assert page.evaluate(shown) == want, how
    # the orders differ on this class, so each check above could fail
    assert len({tuple(i.position for i in v) for v in expected.values()}) == 3
