"""Long jobs on the page (issue 25, item 2), in Chromium against the real server: an analysis of
a new pair names the whole request in the banner, shows its time so far and left (moving every
second), is cancelled by its button or by Escape, and the saved analyses' list is read again
when it ends; a defense search is cancelled by Escape too. Screenshots in ``test-artifacts/``."""

from __future__ import annotations

import httpx
import pytest

from massif.server.answers import PairChoice
from tests.helpers.browser import ARTIFACTS, in_view, open_page, pick_unsaved_pair, watched_page
from tests.helpers.synthetic import synthetic_graph

pytestmark = pytest.mark.timeout(240, func_only=True)
SIZES = [(1280, 800), (1920, 1080)]


@pytest.mark.parametrize("width,height,how", [(1280, 800, "button"), (1920, 1080, "escape")],
                         ids=["1280x800-button", "1920x1080-escape"])
def test_an_analysis_names_its_request_moves_and_is_cancelled(site, browser, width, height, how):
    key = site["default"]
    page, errors = watched_page(browser, width, height)
    benign, target = ("Trouser", "Bag") if how == "button" else ("Pullover", "Coat")
    # Another analysis (PGD: slow) holds the server's one worker first, so the page's job is
    # still waiting or running when it is cancelled: on a quiet machine 64 images of FGSM
    # could end before the cancel came.
    jobs = site["app"].state.jobs
    blocker = jobs.submit(PairChoice(benign="Shirt" if how == "button" else "Dress",
                                     target="Dress" if how == "button" else "Shirt",
                                     attack="pgd-linf"))
    try:
        open_page(page, site["url"] + f"/graphs/{key}")
        pick_unsaved_pair(page, benign, target)
        page.locator("#attack").select_option("fgsm")
        page.locator("#max-strength").fill("0.2")
        page.locator("#targeted").uncheck()
        pick_unsaved_pair(page, benign, target)
        page.locator("#analyze").click()
        page.wait_for_selector("#job:not([hidden])", timeout=30_000)
        banner = page.locator("#pending")
        page.wait_for_selector("#pending:not([hidden])")
        assert f"{benign} → {target} · untargeted FGSM up to ε = 0.2" in banner.text_content()
        assert "still Sneaker → Sandal" in banner.text_content()
        # the line moves every second, whatever the server's progress does
        page.wait_for_function("+document.querySelector('#job-text').dataset.seconds >= 2",
                               timeout=30_000)
        assert "so far" in page.locator("#job-text").text_content()
        for selector in ("#job-cancel", "#job-text", "#pending"):
            assert in_view(page, selector), selector
        page.screenshot(path=str(ARTIFACTS / f"job-{width}x{height}.png"))
        # a graph saved meanwhile (another browser's, say) is listed once the job ends
        site["ws"].save(synthetic_graph(layers=3, per_layer=4, seed=11), f"listed-{how}")
        assert page.locator(f"#saved option[value='listed-{how}']").count() == 0
        if how == "button":
            page.locator("#job-cancel").click()
        else:
            page.keyboard.press("Escape")  # the focus is on the Show button
        page.wait_for_selector("html[data-job=cancelled]", timeout=60_000)
        assert page.locator("#job").is_hidden() and page.locator("#pending").is_hidden()
        page.wait_for_selector(f"#saved option[value='listed-{how}']", state="attached",
                               timeout=10_000)
        assert "cancelled" in page.locator("#error").text_content()
        assert page.locator("#saved").input_value() == key  # the graph shown stays chosen
        # Cancelling it again: the server says in words that nothing runs.
        status = page.evaluate("fetch('/analyses.json?' + new URLSearchParams({benign: "
                               f"'{benign}', target: '{target}', attack: 'fgsm', targeted: "
                               "'false', max_strength: '0.2'})).then(r => r.json())")
        r = httpx.post(f"{site['url']}/analyses/{status['key']}/cancel", json={}, timeout=10)
        assert r.status_code == 409 and "nothing to cancel" in r.json()["detail"]
    finally:
        jobs.cancel(blocker.key)
        page.context.close()
    assert not errors, errors


def test_escape_cancels_a_defense_search(site, page):
    key = site["default"]
    open_page(page, site["url"] + f"/graphs/{key}")
    page.locator("#budget").fill("3")
    page.locator("#defense").click()
    page.wait_for_selector("#defense-cancel:not([hidden])", timeout=30_000)
    page.wait_for_function("/so far/.test(document.querySelector('#defense-percent').textContent)",
                           timeout=30_000)
    page.keyboard.press("Escape")
    page.wait_for_selector("html[data-defense=cancelled]", timeout=120_000)
    assert page.locator("#defense-cancel").is_hidden()
