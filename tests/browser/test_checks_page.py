"""Checking a deletion with attacks that know the mask, on the page (docs/edit.md): the checks
the server offers (/index.json, the registry's) are ticked under *Delete neurons*; a deletion
then runs them as a job on the server after its other numbers, and the results box shows each
one's ASR at ε_max before and after, as the server answered, in view; the job's cancel button
and Escape stop it, and the numbers without the checks stay."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.browser import ARTIFACTS, click_node, graph_of, in_view, open_page

pytestmark = pytest.mark.timeout(300, func_only=True)  # the test alone, not the site's set-up


def test_a_deletion_is_checked_with_the_attacks_ticked(site, page):
    key, url = site["default"], site["url"]
    offered = [c["name"] for c in httpx.get(f"{url}/index.json", timeout=30).json()["checks"]]
    open_page(page, f"{url}/graphs/{key}")
    page.wait_for_selector("html[data-editor=ready]", timeout=120_000)
    boxes = page.locator("#checks-list input")
    assert [b.get_attribute("value") for b in boxes.all()] == offered  # the server's list
    assert "pgd-restarts" in offered
    page.locator("#checks-list input[value=pgd-restarts]").check()
    answers = []
    page.on("response", lambda r: answers.append(r.json()["result"])
            if "/checks/" in r.url and r.url.endswith(".json") and r.json()["state"] == "done"
            else None)
    graph = graph_of(site, key)
    node = max((n for n in graph.nodes if n.group == "emphasized"),
               key=lambda n: n.vulnerability or 0)
    page.locator("#edit-mode").check()
    click_node(page, node.id)
    page.wait_for_selector(f"#edit-result[data-mask='{node.id}'][data-phase=checked]",
                           timeout=240_000)
    (answer,) = answers
    (check,) = answer["checks"]
    assert check["name"] == "pgd-restarts"
    cells = page.locator("#edit-result tr.asr-check td").all_text_contents()
    assert cells == [f"{round(100 * check['asr']['before'])}%",
                     f"{round(100 * check['asr']['after'])}%"]
    assert "pgd-restarts" in page.locator("#edit-result tr.asr-check th").text_content()
    for warning in answer["warnings"]:
        assert warning in page.locator("#edit-status").text_content()
    assert in_view(page, "#edit-result")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "checks-1280x800.png"))


@pytest.mark.parametrize("how", ["button", "escape"])
def test_the_checks_job_can_be_cancelled_and_the_numbers_without_it_stay(site, page, how):
    key, url = site["default"], site["url"]
    open_page(page, f"{url}/graphs/{key}")
    page.wait_for_selector("html[data-editor=ready]", timeout=120_000)
    page.locator("#checks-list input[value=apgd-t]").check()  # minutes on every image
    started = []
    page.on("response", lambda r: started.append(r.json()["id"])
            if r.url.endswith(f"/graphs/{key}/checks") and r.status == 202 else None)
    graph = graph_of(site, key)
    node = [n for n in graph.nodes if n.group == "emphasized"][-1]
    page.locator("#edit-mode").check()
    click_node(page, node.id)
    page.wait_for_selector("#checks-cancel:visible", timeout=240_000)
    page.wait_for_function("/checking with apgd-t .*%/.test("
                           "document.querySelector('#edit-status').textContent)")
    assert in_view(page, "#checks-cancel") and in_view(page, "#edit-status")
    if how == "button":
        page.locator("#checks-cancel").click()
    else:
        page.locator("#graph-svg").click(position={"x": 5, "y": 5})  # the focus off any box
        page.keyboard.press("Escape")
    page.wait_for_selector("#checks-cancel", state="hidden")
    assert "checks cancelled" in page.locator("#edit-status").text_content()
    assert page.locator(f"#edit-result[data-mask='{node.id}'][data-phase=full]").count() == 1
    (job_id,) = started
    for _ in range(100):  # the job stops at its next batch
        state = httpx.get(f"{url}/checks/{job_id}.json", timeout=30).json()["state"]
        if state != "running":
            break
        page.wait_for_timeout(200)
    assert state == "cancelled"
    page.screenshot(path=str(ARTIFACTS / f"checks-cancelled-{how}.png"))
