"""The defense's trade-off on the page (issue 26, item 4): a search started while neurons are
deleted starts from them, and its Pareto front is drawn in view at 1280×800 (a screenshot in
test-artifacts/)."""

from __future__ import annotations

import pytest

from massif.edit import DefenseResult
from tests.helpers.browser import ARTIFACTS, in_view, open_page

pytestmark = pytest.mark.timeout(300, func_only=True)  # the test alone, not the site's set-up


def test_the_defense_starts_from_the_deletions_and_draws_its_front(site, page):
    key = site["default"]
    graph = site["ws"].load(key)
    # a shared neuron: deleting it leaves the attack going, so the search has work to do
    first = next(n.id for n in graph.nodes if n.group == "shared")
    open_page(page, site["url"] + f"/graphs/{key}")
    page.evaluate(f"window.massif.store.set({{ masked: ['{first}'] }})")
    page.locator("#budget").fill("2")
    with page.expect_response(lambda r: r.url.endswith(f"/graphs/{key}/defense")
                              and r.request.method == "POST") as answer:
        page.locator("#defense").click()
    assert answer.value.status == 202
    assert answer.value.request.post_data_json == {"budget": 2, "mode": "zero",
                                                   "start": [first]}
    job_id = answer.value.json()["id"]
    page.wait_for_selector("html[data-defense=ready]", timeout=240_000)
    result = DefenseResult.model_validate(
        page.evaluate(f"fetch('/defenses/{job_id}.json').then(r => r.json())")["result"])
    assert result.start == [first] and result.complete and result.front
    front = page.locator("#defense-front")
    assert front.get_attribute("data-front") == str(len(result.front))
    points = page.locator("#defense-front .front-point")
    assert points.count() == len(result.front)
    assert points.evaluate_all("ps => ps.map(p => p.dataset.source)") == \
        [p.source for p in result.front]
    measured = 1 + 1 + len(result.greedy) + len(result.top_emphasized) + sum(
        len(r.masks) for r in result.random)
    assert front.get_attribute("data-measured") == str(measured)
    title = page.locator("#defense-front .front-title").text_content()
    assert title == f"Pareto front: {len(result.front)} of {measured} masks · from 1 deleted"
    assert in_view(page, "#defense-front") and in_view(page, "#defense-status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "defense-front-1280x800.png"))
    # Without deletions the search starts from the unedited model: no start is sent.
    page.evaluate("window.massif.store.set({ masked: [] })")
    with page.expect_response(lambda r: r.url.endswith(f"/graphs/{key}/defense")
                              and r.request.method == "POST") as answer:
        page.locator("#defense").click()
    assert answer.value.request.post_data_json == {"budget": 2, "mode": "zero"}
    page.wait_for_selector("html[data-defense=ready]", timeout=240_000)
    assert "deleted" not in page.locator("#defense-front .front-title").text_content()
