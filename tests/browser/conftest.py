"""The browser tier's set-up: one real server and one Chromium for the whole session.

The server (uvicorn on 127.0.0.1, a free port) computes with the bundled model on 64 images per
class; its workspace holds the default analysis (Sneaker → Sandal, computed by the server's own
job manager before the tests) and graphs built in code (``synthetic.py``) for the layout and
speed checks.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, sync_playwright

from massif.server import create_app
from massif.store import Workspace
from tests.helpers.browser import ARGS, CHROMIUM, watched_page
from tests.helpers.synthetic import live_server, synthetic_graph


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("browser-ws"))
    ws.save(synthetic_graph(layers=9, per_layer=8, seed=1), "synthetic-8")
    ws.save(synthetic_graph(layers=9, per_layer=30, seed=2), "synthetic-30")
    ws.save(synthetic_graph(layers=10, per_layer=30, edges=1200, seed=3), "synthetic-300")
    warned = synthetic_graph(layers=4, per_layer=6, seed=4)
    warned.warnings = ["the model classifies only 3% of the benign images correctly",
                       "only 3 images are classified correctly"]
    ws.save(warned, "synthetic-warned")
    # 32 optimisation steps per feature visualization, not 256: the tests check that pictures
    # arrive and replace placeholders, not how they look, and the default's minutes of ascent
    # were most of this set-up (on a busy machine, past its bound)
    app = create_app(ws.root, "bundled", device="cpu", max_images=64, batch_size=64,
                     picture_steps=32)
    jobs = app.state.jobs
    status = jobs.submit(app.state.engine.default_choice())
    # A bound for a hang, not a speed check: on a loaded machine this takes minutes (the tests'
    # own time limits leave out their fixtures, func_only).
    status = jobs.wait(status.key, timeout=480)
    assert status.state == "done", status
    with live_server(app) as url:
        yield {"url": url, "app": app, "ws": ws, "default": status.key}


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser) -> Page:
    """A 1280×800 page that fails the test on any console error or uncaught exception."""
    pg, errors = watched_page(browser)
    yield pg
    pg.context.close()
    assert not errors, errors
