"""Deletion curves on the page (docs/evaluate.md): "Deletion curves" computes them as a job
with progress, draws one curve per ranking with its areas in a table, in view at 1280×800 and
1920×1080; the curves are then saved, so after a reload the same button shows them at once; a
ranking's row deletes its top neurons."""

from __future__ import annotations

import httpx
import pytest

from massif.edit import Curves
from tests.helpers.browser import ARTIFACTS, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(400, func_only=True)  # the test alone, not the site's set-up


def test_deletion_curves_are_computed_drawn_saved_and_applied(site, browser):
    key, url = site["default"], site["url"]
    page, errors = watched_page(browser, 1280, 800)
    try:
        open_page(page, f"{url}/graphs/{key}")
        page.wait_for_selector("html[data-editor=ready]", timeout=120_000)
        answers = []  # the state each POST /graphs/{key}/curves answered
        page.on("response", lambda r: answers.append(r.json()["state"])
                if r.request.method == "POST" and r.url.endswith(f"/graphs/{key}/curves")
                else None)
        page.locator("#curves-run").click()
        page.wait_for_selector("#curves-job:not([hidden])", timeout=30_000)
        page.wait_for_selector("html[data-curves=ready]", timeout=300_000)
        assert answers == ["queued"] or answers == ["running"], answers
        saved = Curves.model_validate(
            httpx.get(f"{url}/graphs/{key}/curves.json", timeout=30).json())
        drawn = page.evaluate("[...document.querySelectorAll('#curves-chart g.curve')]"
                              ".map((g) => [g.dataset.ranking, +g.dataset.points])")
        assert drawn == [[c.ranking, len(c.points)] for c in saved.curves]
        rows = page.locator("#curves-table tbody tr")
        assert rows.count() == len(saved.curves)
        order = [r.get_attribute("data-ranking") for r in rows.all()]
        areas = {c.ranking: c.auc_cost if c.auc_cost is not None else 2 for c in saved.curves}
        assert [areas[r] for r in order] == sorted(areas[r] for r in order)  # best first
        assert in_view(page, "#curves-box")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "curves-1280x800.png"))

        # A ranking's row deletes its top neurons (at most 8) on the graph.
        vulnerability = saved.curve("vulnerability")
        page.locator("#curves-table button.ranking[data-ranking=vulnerability]").click()
        want = vulnerability.order[:8]
        page.wait_for_function(f"window.massif.store.get().masked.join() === '{','.join(want)}'")
        assert page.locator("#graph-svg .node.masked").count() == len(want)

        # At 1920×1080, after a reload, the saved curves come without a new job.
        page.set_viewport_size({"width": 1920, "height": 1080})
        open_page(page, f"{url}/graphs/{key}")
        page.locator("#curves-run").click()
        page.wait_for_selector("html[data-curves=ready]", timeout=30_000)
        assert answers[1:] == ["done"], answers  # found saved: no job ran
        assert page.locator("#curves-job").is_hidden()
        assert in_view(page, "#curves-box")
        page.screenshot(path=str(ARTIFACTS / "curves-1920x1080.png"))
        assert not errors, errors
    finally:
        page.context.close()
