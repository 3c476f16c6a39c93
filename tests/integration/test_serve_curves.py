"""Deletion curves over HTTP, on the planted model (tests/helpers/tiny.py) where the right
curve is known: the job answers what ``Editor.curves`` answers in Python, saves them beside the
analysis, can be cancelled, and bad requests are 4xx before any work."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import massif
from massif.edit import Curves
from massif.server import create_app
from massif.store import Workspace
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    app = create_app(ws.root, planted_model(), planted_data(), device="cpu", pictures=False,
                     nodes_per_layer=1)
    with TestClient(app, base_url=LOCAL) as client:
        status = client.post("/analyses", json={"benign": "benign", "target": "target"}).json()
        done = settled(client, f"/analyses/{status['key']}.json", 120)
        assert done["state"] == "done", done
        yield client, ws, done["key"]


def test_the_curves_job_answers_what_the_editor_answers_and_saves_them(served):
    client, ws, key = served
    assert client.get(f"/graphs/{key}/curves.json").status_code == 404  # none yet
    body = {"ks": [1, 2], "rankings": ["vulnerability", "activation-change", "random"]}
    r = client.post(f"/graphs/{key}/curves", json=body)
    assert r.status_code == 202, r.text
    job = settled(client, f"/curves/{r.json()['id']}.json", 120)
    assert job["state"] == "done" and job["progress"] == 1.0, job
    got = Curves.model_validate(job["result"])
    # the planted pathway's neuron first, its curve exact (test_curves.py)
    vul = got.curve("vulnerability")
    assert vul.order == ["l1:1", "l2:1"]
    assert [(p.k, p.asr, p.clean_accuracy) for p in vul.points] == [(0, 1, 1), (1, 0, 1),
                                                                    (2, 0, 1)]
    graph = ws.load(key)
    editor = massif.Editor.from_graph(planted_model(), planted_data(), graph, device="cpu")
    want = editor.curves(graph, ks=[1, 2], rankings=body["rankings"])
    assert got.model_dump(exclude={"seconds"}) == want.model_dump(exclude={"seconds"})
    # saved beside the analysis, and served from there
    saved = client.get(f"/graphs/{key}/curves.json")
    assert saved.status_code == 200
    assert Curves.model_validate(saved.json()) == got
    folder = ws.graph_path(key).parent
    assert {"curves.json", "curves.svg", "curves.png"} <= {p.name for p in folder.iterdir()}
    # {} finds them: a job done at once, no computation
    found = client.post(f"/graphs/{key}/curves", json={})
    assert found.status_code == 202 and found.json()["state"] == "done", found.text
    assert Curves.model_validate(found.json()["result"]) == got
    # a finished job cannot be cancelled
    ended = client.post(f"/curves/{job['id']}/cancel", json={})
    assert ended.status_code == 409 and "ended already" in ended.json()["detail"]


def test_a_curves_job_can_be_cancelled(served):
    client, _, key = served
    r = client.post(f"/graphs/{key}/curves", json={"draws": 100})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    # (the cancel comes at once; the job measures about 200 masks, each one asking first)
    cancel = client.post(f"/curves/{job_id}/cancel", json={})
    assert cancel.status_code == 200, cancel.text
    job = settled(client, f"/curves/{job_id}.json", 120)
    assert job["state"] == "cancelled" and job["result"] is None, job


@pytest.mark.parametrize(("body", "message"), [
    ({"rankings": ["votez"]}, "votes"),
    ({"ks": [0]}, "≥ 1"),
    ({"ks": [99]}, "99"),
    ({"draws": 3}, "draws"),
    ({"rankings": []}, "rankings are empty"),
    ({"colour": "red"}, "colour"),
])
def test_bad_curves_requests_are_refused_before_any_work(served, body, message):
    client, _, key = served
    r = client.post(f"/graphs/{key}/curves", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"], r.json()


def test_unknown_analyses_and_jobs_are_404(served):
    client, _, _ = served
    assert client.get("/graphs/nope/curves.json").status_code == 404
    assert client.post("/graphs/nope/curves", json={}).status_code == 404
    assert client.get("/curves/12345.json").status_code == 404
    assert client.post("/curves/12345/cancel", json={}).status_code == 404


def test_unreadable_saved_curves_are_computed_anew_when_the_page_asks(served):
    client, ws, key = served
    path = ws.graph_path(key).parent / "curves.json"
    path.write_text("{not json")
    assert client.get(f"/graphs/{key}/curves.json").status_code == 409
    r = client.post(f"/graphs/{key}/curves", json={})  # what the page sends
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running"), r.text
    job = settled(client, f"/curves/{r.json()['id']}.json", 120)
    assert job["state"] == "done", job
    assert Curves.model_validate_json(path.read_text()) == Curves.model_validate(job["result"])


def test_finished_jobs_are_forgotten_beyond_keep():
    from massif.server.edit_jobs import EditJobs

    jobs = EditJobs()
    jobs.KEEP = 3
    made = [jobs.found("k", "curves", {"n": i}) for i in range(10)]
    assert sorted(jobs.jobs) == [j.id for j in made[-3:]]


@pytest.mark.parametrize("kind, route", [("defense", "/defenses"), ("curves", "/curves")])
def test_a_long_jobs_error_shows_no_server_path(served, kind, route):
    # Defense searches and curves share one job runner; whatever a job's work fails with, its
    # status names the workspace, never its path, and no other absolute folder either.
    from massif.errors import MassifError

    client, ws, key = served
    jobs = client.app.state.defenses.jobs

    def work(editor, hooks):
        raise MassifError(f"cannot read {ws.root.resolve()}/graphs/{key}/model.pt "
                          "nor /srv/private/data/cat.png")

    details = {"budget": 1, "mode": "zero", "start": [], "picks": []} if kind == "defense" else {}
    job = jobs.start(key, kind, lambda: None, work, details=details)
    assert job.finished.wait(30)
    answer = client.get(f"{route}/{job.id}.json").json()
    assert answer["state"] == "error", answer
    assert str(ws.root) not in answer["error"] and "/srv/private" not in answer["error"]
    assert answer["error"].startswith("cannot read <workspace>/graphs/"), answer["error"]
    assert "cat.png" in answer["error"]
