"""The standalone report (``massif report``, ``massif.show``), the page's "download report" and
a ``Graph`` in a notebook, opened in Chromium from ``file://`` with every network request
refused: all nodes drawn with their pictures, hover, pins, slider and pathways working, no
console error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page

import massif
from massif.report import bundle_modules
from tests.helpers.browser import ARTIFACTS, graph_of

pytestmark = pytest.mark.timeout(180, func_only=True)  # the test alone, not the site's set-up


def offline_page(browser, width: int = 1280, height: int = 800):
    """A page whose requests for anything but file: and data: URLs are refused and recorded;
    (page, requests refused, console errors)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    refused: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "about:")):
            return r.continue_()
        refused.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, refused, errors


def check_page(page: Page, graph) -> None:
    """The report's page works: every node with its picture, hover, pin, slider, pathway."""
    assert page.locator("#graph-svg .node").count() == len(graph.nodes)
    hrefs = page.evaluate("[...document.querySelectorAll('#graph-svg .node image')]"
                          ".map(im => im.getAttribute('href'))")
    assert len(hrefs) == len(graph.nodes) and all(h.startswith("data:image/png;base64,")
                                                  for h in hrefs)
    node = graph.nodes[len(graph.nodes) // 2]
    page.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
    assert page.locator("#node-id").text_content() == node.id
    page.wait_for_function("document.querySelector('#details img.examples').naturalWidth > 0")
    page.locator(f'#graph-svg .node[data-id="{node.id}"]').click()
    assert page.evaluate("window.massif.store.get().pins") == [node.id]
    page.locator("#slider").focus()
    page.keyboard.press("Home")
    page.wait_for_selector("#asr[data-k='0']")
    assert page.locator("#graph-svg .node.flipped").count() == 0
    page.keyboard.press("End")
    page.select_option("#highlight", "activated")
    assert page.locator("#graph-svg .node.on-path").count() >= len(graph.layers)
    # What needs a server is not offered.
    for sel in ("#edit", "#analyze", "#download-report"):
        assert page.locator(sel).is_hidden(), sel


def test_massif_report_opens_from_disk_with_no_network(site, browser, tmp_path):
    key = site["default"]
    graph = graph_of(site, key)
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "massif", "report",
                           str(site["ws"].root / "graphs" / key), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}") and str(len(graph.nodes)) in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp litter
    page, refused, errors = offline_page(browser)
    try:
        page.goto(out.as_uri())
        page.wait_for_selector("html[data-state=ready]", state="attached", timeout=30_000)
        assert "report" in page.evaluate("document.documentElement.className")
        check_page(page, graph)
        page.locator("#details img.examples").click()  # the large view, with patch classes
        page.wait_for_selector("#lightbox ol.patches li .class")
        page.keyboard.press("Escape")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-1280x800.png"))
        assert not refused and not errors, (refused, errors)
    finally:
        page.context.close()


def test_massif_show_writes_the_report_and_opens_it_in_the_web_browser(site, browser,
                                                                        tmp_path):
    """``massif.show(run)``: the file ``massif report`` writes, opened in the user's web browser
    (``$BROWSER``, here a script that notes the URL it is given); ``massif.show(graph)``
    without ``out`` writes to the cache's reports folder, a page that works offline."""
    key = site["default"]
    run, out, cli = site["ws"].root / "graphs" / key, tmp_path / "shown.html", tmp_path / "cli.html"
    opened = tmp_path / "opened.txt"
    web_browser = tmp_path / "web-browser"
    web_browser.write_text('#!/bin/sh\nprintf "%s" "$1" > "$OPENED"\n')
    web_browser.chmod(0o755)
    env = dict(os.environ, BROWSER=str(web_browser), OPENED=str(opened))
    code = "import sys, massif; print(massif.show(sys.argv[1], out=sys.argv[2]))"
    done = subprocess.run([sys.executable, "-c", code, str(run), str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert opened.read_text() == out.resolve().as_uri()
    subprocess.run([sys.executable, "-m", "massif", "report", str(run), "-o", str(cli)],
                   check=True, capture_output=True, timeout=120)
    assert out.read_bytes() == cli.read_bytes()

    graph = site["ws"].load(key)
    cache = tmp_path / "cache"
    shown = massif.show(graph, cache=cache, browser=False)
    assert shown == cache / "reports" / "sneaker-sandal-fgm.html"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == [
        Path("cache/reports/sneaker-sandal-fgm.html"), Path("cli.html"), Path("opened.txt"),
        Path("shown.html"), Path("web-browser")]
    page, refused, errors = offline_page(browser)
    try:
        page.goto(shown.as_uri())
        page.wait_for_selector("html[data-state=ready]", state="attached", timeout=30_000)
        assert page.locator("#graph-svg .node").count() == len(graph.nodes)
        assert "Sneaker → Sandal" in page.locator("#title").text_content()
        assert not refused and not errors, (refused, errors)
    finally:
        page.context.close()


def test_the_page_downloads_the_same_report(site, page, tmp_path):
    key = site["default"]
    page.goto(site["url"] + f"/graphs/{key}")
    page.wait_for_selector("html[data-state=ready]")
    with page.expect_download(timeout=60_000) as download:
        page.locator("#download-report").click()
    assert download.value.suggested_filename == f"massif-{key}.html"
    got = download.value.path().read_bytes()
    out = tmp_path / "cli.html"
    subprocess.run([sys.executable, "-m", "massif", "report",
                    str(site["ws"].root / "graphs" / key), "-o", str(out)],
                   check=True, capture_output=True, timeout=120)
    assert got == out.read_bytes()


def test_a_graph_shows_itself_in_a_notebook_cell(site, browser, tmp_path):
    """What Jupyter puts in the cell when a graph is its value: IPython's display formatter,
    in a shell started before massif is imported (as a kernel is), gives an iframe with the
    page; the graph contract itself knows nothing of the report."""
    key = site["default"]
    cell = tmp_path / "cell.html"
    code = ("import sys; from IPython.core.interactiveshell import InteractiveShell; "
            "InteractiveShell.instance(); import massif; "
            "graph = massif.Graph.load(sys.argv[1]); "
            "data, _ = InteractiveShell.instance().display_formatter.format(graph); "
            "print(data['text/html'])")
    path = site["ws"].root / "graphs" / key / "graph.json"
    shown = subprocess.run([sys.executable, "-c", code, str(path)],
                           check=True, capture_output=True, text=True, timeout=120).stdout
    graph = site["ws"].load(key)
    assert not hasattr(graph, "_repr_html_")
    cell.write_text(f"<!doctype html><html><body><h1>In [1]: graph</h1>{shown}</body></html>")
    page, refused, errors = offline_page(browser, 1400, 1000)
    try:
        page.goto(cell.as_uri())
        frame = page.frame_locator("iframe")
        frame.locator("html[data-state=ready]").wait_for(state="attached", timeout=30_000)
        assert frame.locator("#graph-svg .node").count() == len(graph.nodes)
        node = graph.nodes[0]
        frame.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
        assert frame.locator("#node-id").text_content() == node.id
        assert not refused and not errors, (refused, errors)
    finally:
        page.context.close()


def test_the_bundle_refuses_module_styles_it_does_not_know(tmp_path):
    from massif.errors import MassifError

    (tmp_path / "main.js").write_text('import { a } from "./a.js";\nexport default a;\n')
    (tmp_path / "a.js").write_text("export const a = 1;\n")
    with pytest.raises(MassifError, match="export default"):
        bundle_modules(tmp_path)
    (tmp_path / "main.js").write_text('import { a } from "./a.js";\nexport const b = a;\n')
    (tmp_path / "a.js").write_text('import { b } from "./main.js";\nexport const a = 1;\n')
    with pytest.raises(MassifError, match="cannot order"):
        bundle_modules(tmp_path)
    (tmp_path / "a.js").write_text("export const a = 1;\nexport function twice(x) "
                                   "{ return 2 * x; }\n")
    (tmp_path / "main.js").write_text('import { a, twice as double } from "./a.js";\n'
                                      "window.result = double(a);\n")
    script = bundle_modules(tmp_path)
    assert "import" not in script and "export" not in script
    assert script.index('modules["a"]') < script.index('modules["main"]')
