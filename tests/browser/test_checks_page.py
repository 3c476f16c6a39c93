"""Checking a deletion with attacks that know the mask, on the page (docs/edit.md): the checks
the server offers (/index.json, the registry's) are ticked under *Delete neurons*; a deletion
then asks for them after its other numbers, and the results box shows each one's ASR at ε_max
before and after, as the server answered, in view."""

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
    page.on("response", lambda r: answers.append(r.json())
            if r.url.endswith(f"/graphs/{key}/edit") and r.request.method == "POST"
            and (r.request.post_data_json or {}).get("checks") else None)
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
