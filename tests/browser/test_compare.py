"""The comparison page (/compare) in Chromium at 1280×800: what it draws is what
``massif.compare`` computes, the URL names the view, and bad keys get a plain message."""

from __future__ import annotations

import re

import httpx
import pytest

import massif
from massif.comparison import split
from tests.helpers.browser import ARTIFACTS, graph_of, in_view

pytestmark = pytest.mark.timeout(120, func_only=True)  # the test alone, not the site's set-up


def open_compare(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-compared]", timeout=30_000)


def drawn_parts(page) -> dict[tuple[str, str, str], list[str]]:
    """Each table cell's neuron ids: (layer, group, part) → ids."""
    return page.evaluate("""() => {
        const out = {};
        for (const td of document.querySelectorAll('#neuron-table td[data-group]')) {
          const layer = td.parentElement.dataset.layer;
          out[`${layer}|${td.dataset.group}|${td.dataset.part}`] =
            [...td.querySelectorAll('.chip')].map((c) => c.dataset.id);
        }
        return out; }""")


def expected_parts(comparison) -> dict[str, list[str]]:
    out = {}
    for group in ("emphasized", "suppressed"):
        parts = split(comparison, group)
        for layer in comparison.layers:
            for part in ("a", "both", "b"):
                out[f"{layer}|{group}|{part}"] = [n.id for n in parts[part] if n.layer == layer]
    return out


def test_one_analysis_at_two_strengths(site, page):
    key = site["default"]
    graph = graph_of(site, key)
    big_k = len(graph.attack.strengths) - 1
    open_compare(page, f"{site['url']}/compare?a={key}")
    # With B not given, B is A at a middle strength, and the URL says so.
    middle = big_k // 2
    assert page.evaluate("document.body.dataset.compared") == f"{key}@{big_k}|{key}@{middle}"
    assert re.search(rf"[?&]b={key}&.*kb={middle}|kb={middle}.*b={key}", page.url), page.url
    expected = massif.compare(graph, graph, None, graph.attack.strengths[middle], key, key)
    assert drawn_parts(page) == expected_parts(expected)
    # Something is emphasized at ε_max only (it flips between the two strengths).
    assert any(ids for name, ids in expected_parts(expected).items()
               if name.endswith("|emphasized|a"))
    facts = page.locator("#side-b .facts").text_content()
    assert f"{round(100 * expected.b.asr)}%" in facts
    assert (expected.b.divergence_layer or "none") in facts
    assert page.locator("#crossed-compare rect[data-layer]").count() == 2 * len(graph.layers)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare-1280x800.png"))

    # Choosing another strength for A redraws the table and rewrites the URL; a reload keeps it.
    page.select_option("#strength-a", "1")
    page.wait_for_function(f"document.body.dataset.compared === '{key}@1|{key}@{middle}'")
    assert "ka=1" in page.url
    expected = massif.compare(graph, graph, graph.attack.strengths[1],
                              graph.attack.strengths[middle], key, key)
    assert drawn_parts(page) == expected_parts(expected)
    page.reload()
    page.wait_for_selector("body[data-compared]")
    assert page.evaluate("document.body.dataset.compared") == f"{key}@1|{key}@{middle}"
    assert page.locator("#strength-a").input_value() == "1"

    # A chip opens the neuron in its analysis.
    chip = page.locator("#neuron-table .chip").first
    neuron = chip.get_attribute("data-id")
    assert chip.get_attribute("href") == f"/graphs/{key}/nodes/{neuron}"


def test_two_models_compare_only_attacks_and_crossings(site, page):
    key = site["default"]
    open_compare(page, f"{site['url']}/compare?a={key}&b=synthetic-8")
    note = page.locator("#models-differ")
    assert note.is_visible() and "models differ" in note.text_content()
    assert in_view(page, "#models-differ")
    assert not page.locator("#neuron-table").is_visible()
    assert page.locator("#asr-compare path.asr-line").count() == 2
    # the chart's key: A and B drawn as their lines are (width, dashes, opacity, colour)
    looks = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#asr-compare path.asr-line, #asr-compare path.key')].map((p) => [p.getAttribute('class'),
        ['stroke', 'stroke-width', 'stroke-dasharray', 'stroke-opacity']
          .map((a) => getComputedStyle(p).getPropertyValue(a))]))""")
    for side in ("a", "b"):
        assert looks[f"key {side}"] == looks[f"asr-line {side}"], looks
    assert looks["key a"] != looks["key b"]
    titles = page.locator("#asr-compare text.axis-title").all_text_contents()
    assert titles == ["attack strength ε →", "ASR"]


def test_the_header_keeps_the_two_labels_apart(site, page):
    key = site["default"]
    c = httpx.get(f"{site['url']}/compare.json", params={"a": key, "b": "synthetic-8"},
                  timeout=30).json()
    open_compare(page, f"{site['url']}/compare?a={key}&b=synthetic-8")
    title = page.locator("#title").text_content()
    assert title == f"A: {c['a']['label']} | B: {c['b']['label']}", title
    assert page.locator("#title .sep").bounding_box()["width"] > 8  # a gap, not one space


def test_the_main_page_links_to_the_comparison(site, page):
    key = site["default"]
    page.goto(f"{site['url']}/graphs/{key}")
    page.wait_for_selector("html[data-state=ready]")
    link = page.locator("#compare-link")
    assert link.is_visible() and in_view(page, "#compare-link")
    link.click()
    page.wait_for_selector("body[data-compared]")
    assert page.evaluate("document.body.dataset.compared").startswith(f"{key}@")


def test_an_unknown_analysis_is_named_in_words(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    thrown: list[str] = []
    page.on("pageerror", lambda e: thrown.append(str(e)))
    try:
        open_compare(page, f"{site['url']}/compare?a={site['default']}&b=no-such-analysis")
        message = page.locator("#compare-error").text_content()
        assert "no analysis 'no-such-analysis'" in message and in_view(page, "#compare-error")
        assert not thrown
    finally:
        context.close()


def test_an_unknown_analysis_is_a_404_and_no_choice_is_shown_as_made(site, browser):
    """``/compare?a=nonexistent`` (issue 25): the page answers 404 and says what is missing in
    words, and neither picker shows an analysis as chosen."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    thrown: list[str] = []
    page.on("pageerror", lambda e: thrown.append(str(e)))
    try:
        answer = page.goto(f"{site['url']}/compare?a=nonexistent")
        assert answer.status == 404
        page.wait_for_selector("body[data-compared=error]", timeout=30_000)
        message = page.locator("#compare-error").text_content()
        assert "no analysis 'nonexistent'" in message and in_view(page, "#compare-error")
        for side in ("a", "b"):
            picker = page.locator(f"#pick-{side}")
            assert picker.input_value() == ""
            assert picker.locator("option:checked").text_content() == "choose an analysis…"
        # one side known: that side shows it, the unknown one shows no choice
        answer = page.goto(f"{site['url']}/compare?a={site['default']}&b=nonexistent")
        assert answer.status == 404
        page.wait_for_selector("body[data-compared=error]", timeout=30_000)
        assert page.locator("#pick-a").input_value() == site["default"]
        assert page.locator("#pick-b").input_value() == ""
        assert not thrown
    finally:
        context.close()
