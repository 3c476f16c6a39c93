"""Thread rules and faults: jobs at once on a real server, no process-wide state touched, the
first checkpoint after the first batch, cancel."""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

import massif
from massif.analysis.profile import Checkpoint, profile_neurons
from massif.files import write_atomic
from massif.server import create_app, is_loopback
from tests.helpers.synthetic import live_server
from tests.helpers.waiting import settled, wait_for

PAIRS = [("Trouser", "Dress"), ("Bag", "Sandal"), ("Pullover", "Coat")]
MASKS = ["mixed4a:12,mixed4b:3", "mixed3b:5", "mixed5a:7,mixed4a:2", "mixed4b:9"]


def test_write_atomic_leaves_the_umask_alone(tmp_path, monkeypatch):
    """The process-wide umask is never read or changed (another thread may rely on it), yet
    the file gets the mode the umask gives any new file."""
    old = os.umask(0o027)
    mask = 0o027

    def refuse(_: int) -> int:
        raise AssertionError("write_atomic touched the process umask")

    monkeypatch.setattr(os, "umask", refuse)
    path = write_atomic(tmp_path / "a" / "b.txt", "hello")
    monkeypatch.undo()
    os.umask(old)
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]  # no temporary left


def test_the_first_checkpoint_is_written_after_the_first_batch(bundled, tmp_path):
    """A run killed right after its first batch loses nothing (not 20 s of work)."""
    model = bundled
    data = massif.load_dataset("fashion-mnist", 28, 1)
    indices = data.indices_of(7)[:96]
    ckpt = Checkpoint(tmp_path / "sums.pt", "key")

    class Killed(Exception):
        pass

    def progress(stage: str, done: int, total: int) -> None:
        if done >= 32:
            raise Killed  # as if killed once the first batch is done

    attack = massif.make_attack("fgm")
    with pytest.raises(Killed):
        profile_neurons(model, data, indices, 7, 5, attack, [0.0, 1.0], batch_size=32,
                        progress=progress, checkpoint=ckpt)
    saved = Checkpoint(tmp_path / "sums.pt", "key").load()
    assert saved is not None and saved["covered"] == 32 and saved["counts"][0] == 32
    resumed = profile_neurons(model, data, indices, 7, 5, attack, [0.0, 1.0], batch_size=32,
                              checkpoint=Checkpoint(tmp_path / "sums.pt", "key"))
    whole = profile_neurons(model, data, indices, 7, 5, attack, [0.0, 1.0], batch_size=32)
    assert resumed.n_images == whole.n_images == 96
    for layer in whole.layers:
        assert torch.allclose(resumed.importance_target[layer], whole.importance_target[layer],
                              rtol=1e-9, atol=0)


def test_loopback_hosts_and_the_warning_beyond_them():
    from massif.server.listen import exposure_warning

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org"))
    assert exposure_warning("127.0.0.1") is None
    assert "no authentication" in exposure_warning("0.0.0.0")


@dataclass
class Busy:
    """What a minute of everything at once on one server gave (``busy_server``)."""

    quiet: float  # the median preview's seconds on the quiet server
    busy: list[float]  # each preview's seconds during the minute
    during_search: int  # previews asked and answered while the defense search was running
    errors: list[str]  # the answers of failed edits
    defense: dict  # the defense search's last status
    analyses: list[dict]  # the analyses' last statuses


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory) -> Busy:
    """For about a minute: new analyses, editor builds, previews, full edits and a defense
    search, all at once over a real socket."""
    app = create_app(tmp_path_factory.mktemp("busy"), "bundled", device="cpu", max_images=150,
                     batch_size=75, pictures=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        key = http.post("/analyses", json={"benign": "Sneaker", "target": "Sandal"}).json()["key"]
        assert settled(http, f"/analyses/{key}.json", 120, every=0.2)["state"] == "done"
        assert http.post(f"/graphs/{key}/editor", json={}).status_code == 200

        def preview(mask: str) -> float:
            t = time.perf_counter()
            r = http.post(f"/graphs/{key}/edit", json={"mask": mask, "preview": True})
            assert r.status_code == 200, r.text
            return time.perf_counter() - t

        quiet = statistics.median(preview(m) for m in MASKS * 2)
        job = http.post(f"/graphs/{key}/defense", json={"budget": 2}).json()
        search = f"/defenses/{job['id']}.json"
        started = [http.post("/analyses", json={"benign": b, "target": t}).json()
                   for b, t in PAIRS]
        busy: list[float] = []
        during: list[bool] = []
        errors: list[str] = []
        stop = time.monotonic() + 60

        def searching() -> bool:
            return http.get(search).json()["state"] == "running"

        def editing(i: int) -> None:
            while time.monotonic() < stop:
                m = MASKS[i % len(MASKS)]
                before = searching()
                busy.append(preview(m))
                during.append(before and searching())
                r = http.post(f"/graphs/{key}/edit", json={"mask": m, "adaptive": i % 2 == 0})
                if r.status_code != 200:
                    errors.append(r.text)
                i += 1

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(editing, i) for i in range(3)]:
                f.result()
        defense = settled(http, search, 240, every=0.5)
        analyses = [settled(http, f"/analyses/{s['key']}.json", 240, every=0.5)
                    for s in started]
    return Busy(quiet, busy, sum(during), errors, defense, analyses)


@pytest.mark.timeout(600)
def test_analyses_edits_and_a_defense_at_once(busy_server):
    """No job fails, nothing answers 5xx, and previews never wait for the defense search or
    the analyses (they have their own lock): some are asked and answered while the search
    runs."""
    b = busy_server
    assert b.defense["state"] == "done", b.defense
    for status in b.analyses:
        assert status["state"] == "done", status
    assert not b.errors
    assert len(b.busy) >= 10
    assert b.during_search >= 1, (b.during_search, len(b.busy))


@pytest.mark.timing
def test_previews_stay_quick_while_everything_runs(busy_server):
    """Previews only share the two cores with the rest: a few times slower at most, never the
    minute of a search."""
    b = busy_server
    print(f"\npreview: {b.quiet:.2f} s quiet, median {statistics.median(b.busy):.2f} s and max "
          f"{max(b.busy):.2f} s busy ({len(b.busy)} previews)")
    assert statistics.median(b.busy) < max(10 * b.quiet, 2.0), (b.quiet, b.busy)
    assert max(b.busy) < 30


def test_an_analysis_can_be_cancelled(tmp_path):
    app = create_app(tmp_path, "bundled", device="cpu", batch_size=50, pictures=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        key = http.post("/analyses", json={"benign": "Shirt", "target": "Bag"}).json()["key"]
        wait_for(lambda: http.get(f"/analyses/{key}.json").json()["progress"] > 0, 60,
                 "the analysis to make progress")
        assert http.post(f"/analyses/{key}/cancel", json={}).status_code == 200
        state = settled(http, f"/analyses/{key}.json", 60, every=0.1)
        assert state["state"] == "cancelled"
        assert not (Path(tmp_path) / "graphs" / key / "graph.json").exists()
        again = http.post("/analyses", json={"benign": "Shirt", "target": "Bag"}).json()
        assert again["state"] in ("queued", "running")  # asked again, it runs again
        http.post(f"/analyses/{key}/cancel", json={})


def test_cancel_stops_the_pictures_between_steps_and_keeps_the_finished_analysis(tmp_path):
    """A cancel during the feature visualizations ends them within seconds (the optimisation
    looks at it after every step, not after a whole batch of 2,000 steps), and the analysis,
    finished by then and its checkpoints gone, is saved rather than thrown away."""
    app = create_app(tmp_path / "ws", "bundled", device="cpu", max_images=60, batch_size=60,
                     cache=tmp_path / "cache", picture_steps=2000)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        key = http.post("/analyses", json={"benign": "Shirt", "target": "Bag"}).json()["key"]

        def visualizing() -> bool:
            state = http.get(f"/analyses/{key}.json").json()
            assert state["state"] in ("queued", "running"), state
            return state["stage"] == "visualize"

        wait_for(visualizing, 120, "the pictures to start")
        assert http.post(f"/analyses/{key}/cancel", json={}).status_code == 200
        # (a cancel that waited for the batch would find its pictures written, below)
        state = settled(http, f"/analyses/{key}.json", 120)
        assert state["state"] == "done"
        graph = massif.Graph.load(tmp_path / "ws" / "graphs" / key / "graph.json")
        assert graph.benign.name == "Shirt"
        assert not list((tmp_path / "cache").rglob("*.png"))  # no picture was finished


def test_a_queued_analysis_cancelled_is_started_anew_when_asked_again(tmp_path):
    app = create_app(tmp_path, "bundled", device="cpu", batch_size=50, pictures=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        first = http.post("/analyses", json={"benign": "Shirt", "target": "Bag"}).json()
        queued = http.post("/analyses", json={"benign": "Coat", "target": "Bag"}).json()
        assert queued["state"] == "queued"
        cancelled = http.post(f"/analyses/{queued['key']}/cancel", json={}).json()
        assert cancelled["state"] == "cancelled"  # at once: it never ran
        again = http.post("/analyses", json={"benign": "Coat", "target": "Bag"}).json()
        assert again["state"] == "queued" and again["job"] != queued["job"]
        for key in (first["key"], again["key"]):
            http.post(f"/analyses/{key}/cancel", json={})
        for key in (first["key"], again["key"]):  # no job thread outlives the server
            assert settled(http, f"/analyses/{key}.json", 60)["state"] == "cancelled"


def test_defense_searches_over_the_limit_are_refused_even_when_asked_at_once(tmp_path):
    """The limit is counted under the same lock that takes a place, before the (slow) fork of
    the editor: six requests at once start at most ``RUNNING`` searches, the rest get 429."""
    app = create_app(tmp_path, "bundled", device="cpu", max_images=60, batch_size=60,
                     pictures=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        key = http.post("/analyses", json={"benign": "Sneaker", "target": "Sandal"}).json()["key"]
        assert settled(http, f"/analyses/{key}.json", 120)["state"] == "done"
        assert http.post(f"/graphs/{key}/editor", json={}).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(
                lambda _: http.post(f"/graphs/{key}/defense", json={"budget": 3}), range(6)))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(202) == 2 and codes.count(429) == 4, [r.text for r in answers]
        started = [r.json()["id"] for r in answers if r.status_code == 202]
        for job in started:
            http.post(f"/defenses/{job}/cancel", json={})
        for job in started:  # no search thread outlives the server
            assert settled(http, f"/defenses/{job}.json", 120)["state"] in ("cancelled", "done")
