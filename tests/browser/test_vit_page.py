"""The page on ``bundled-vit`` (a vision transformer; its neurons are MLP units of token
layers), served as a user would serve it (``massif serve --model bundled-vit``): the default
pair is computed by the server, drawn, each neuron's card shows its feature visualization and
dataset examples, deleting emphasized neurons measures the attack, and one image's path shows,
at 1280×800 and 1920×1080 (screenshots in test-artifacts/)."""

from __future__ import annotations

import httpx
import pytest

from massif.server import create_app
from massif.store import Workspace
from tests.helpers.browser import (
    ARTIFACTS,
    click_node,
    drawn_counts,
    graph_counts,
    graph_of,
    in_view,
    open_page,
    watched_page,
)
from tests.helpers.synthetic import live_server

pytestmark = pytest.mark.timeout(300, func_only=True)  # the test alone, not the set-up


@pytest.fixture(scope="module")
def vit_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit-ws")
    app = create_app(Workspace(root).root, "bundled-vit", device="cpu", max_images=64,
                     batch_size=64, cache=root / "cache", picture_steps=16)
    jobs = app.state.jobs
    status = jobs.submit(app.state.engine.default_choice())
    status = jobs.wait(status.key, timeout=600)  # a bound for a hang on a busy machine
    assert status.state == "done", status
    with live_server(app) as url:
        yield {"url": url, "default": status.key}


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1920, 1080)])
def test_the_vit_graph_cards_deletion_and_one_image(vit_site, browser, width, height):
    key, url = vit_site["default"], vit_site["url"]
    graph = graph_of(vit_site, key)
    assert graph.model.name == "bundled-vit" and graph.layers == ["mlp1", "mlp2", "mlp3", "mlp4"]
    page, errors = watched_page(browser, width, height)
    try:
        open_page(page, f"{url}/graphs/{key}")
        assert drawn_counts(page) == graph_counts(graph)
        assert "Sneaker" in page.locator("header").text_content()

        # The card of an emphasized neuron: its id, its picture and its dataset examples.
        emphasized = sorted((n for n in graph.nodes if n.group == "emphasized"),
                            key=lambda n: -(n.vulnerability or 0))
        assert len(emphasized) >= 2
        node = emphasized[0]
        page.locator(f'#graph-svg .node[data-id="{node.id}"]').hover()
        assert page.locator("#node-id").text_content() == node.id
        detail = httpx.get(f"{url}/graphs/{key}/nodes/{node.id}.json", timeout=30).json()
        assert detail["picture"] and detail["examples"]  # made by the server's job
        page.wait_for_function("[...document.querySelectorAll('#details img')]"
                               ".some((i) => i.naturalWidth > 0)", timeout=30_000)
        assert in_view(page, "#node-id")
        page.screenshot(path=str(ARTIFACTS / f"vit-card-{width}x{height}.png"))

        # Deleting two emphasized neurons: the numbers before and after, in view.
        page.locator("#edit-mode").check()
        mask = [n.id for n in emphasized[:2]]
        for i, neuron in enumerate(mask):
            click_node(page, neuron)
            page.wait_for_selector(f"#edit-result[data-mask='{','.join(mask[:i + 1])}']"
                                   "[data-phase=full]", timeout=120_000)
        assert page.locator("#graph-svg .node.masked").count() == 2
        assert in_view(page, "#edit-result")
        page.screenshot(path=str(ARTIFACTS / f"vit-deleted-{width}x{height}.png"))
        page.locator("#mask-clear").click()
        page.wait_for_selector("#edit-result", state="hidden")

        # One image's path: the gallery, then the first flipped image.
        page.click("#tab-images")
        page.wait_for_selector("#gallery[data-k] .tile", timeout=120_000)
        page.locator("#gallery .tile").first.click()
        page.wait_for_selector("#image-detail[data-position]", timeout=120_000)
        assert in_view(page, "#image-detail")
        page.screenshot(path=str(ARTIFACTS / f"vit-image-{width}x{height}.png"))
        assert not errors, errors
    finally:
        page.context.close()
