"""Loose input over HTTP (issue 24): what the server took before and now refuses, with a 4xx
JSON ``{"detail": ...}`` naming the field; unsupported methods, damaged analyses and the paths
in messages. In-process (FastAPI TestClient) on the tiny planted model, and over a real socket
for the methods."""

from __future__ import annotations

import http.client
import json
import logging

import pytest
from fastapi.testclient import TestClient

import massif
from massif.edit.masks import parse_mask
from massif.server import create_app
from massif.store import Workspace
from tests.helpers.synthetic import live_server, synthetic_graph
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

LOCAL = "http://127.0.0.1:8000"  # the server answers only its own host names
PAIR = {"benign": "benign", "target": "target"}


def planted_app(root):
    return create_app(root, planted_model(), planted_data(), device="cpu", pictures=False)


def computed(client: TestClient) -> dict:
    """Ask for the planted pair's analysis and wait until it is done."""
    status = settled(client, f"/analyses/{client.post('/analyses', json=PAIR).json()['key']}.json")
    assert status["state"] == "done", status
    return status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with one finished analysis of the planted model (its key: ``client.key``)."""
    root = tmp_path_factory.mktemp("ws")
    with TestClient(planted_app(root), base_url=LOCAL) as client:
        client.key = computed(client)["key"]
        yield client


def refused(r, status: int, *words: str) -> str:
    """The message of a JSON refusal with ``status`` that says each of ``words``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    detail = r.json()["detail"]
    assert isinstance(detail, str) and all(w in detail for w in words), detail
    return detail


# ------------------------------------------------------------------ class names


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\x1b", "\x7f", "\x85", "\u202e",
                                  "\u200b"])
def test_a_class_name_with_a_control_character_starts_nothing(server, char):
    """Loose matching took ``"benign\\0"`` for benign and started (or found) the analysis."""
    before = server.app.state.jobs.computed
    for field in ("benign", "target"):
        body = {**PAIR, field: PAIR[field] + char}
        refused(server.post("/analyses", json=body), 422, f"{field}: ",
                f"U+{ord(char):04X}", "control")
        refused(server.get("/analyses.json", params=body), 422, f"{field}: ",
                f"U+{ord(char):04X}")
    assert server.app.state.jobs.computed == before
    assert server.post("/analyses", json={**PAIR, "benign": "Benign "}).json()["state"] == "done"


# ------------------------------------------------------------------ bodies


@pytest.mark.parametrize("mask", ["l1:1,,,", "l1:1,", ",l1:1", "l1:1, ,l2:0",
                                  ["l1:1", ""], ["l1:1", " "]])
def test_a_mask_with_an_empty_neuron_id_is_refused(server, mask):
    for route in ("edit", "edited-model.pt"):
        r = server.post(f"/graphs/{server.key}/{route}", json={"mask": mask, "adaptive": False}
                        if route == "edit" else {"mask": mask})
        refused(r, 422, "is empty", "two commas in a row")


def test_the_cli_and_the_server_share_the_mask_rule():
    """``massif edit --mask`` and the server's edits both go through ``parse_mask``."""
    channels = {"l1": 3, "l2": 3}
    assert parse_mask("l1:1, l2:0", channels) == {"l1": [1], "l2": [0]}
    with pytest.raises(massif.MassifError, match="neuron id 2 of 4 in the mask is empty"):
        parse_mask("l1:1,,,", channels)
    for nothing in ("", ",,", [], [" "]):
        with pytest.raises(massif.MassifError, match="the mask is empty"):
            parse_mask(nothing, channels)


@pytest.mark.parametrize("field", ["adaptive", "preview"])
@pytest.mark.parametrize("value", ["yes", "true", "false", 1, 0, None])
def test_booleans_are_json_booleans(server, field, value):
    r = server.post(f"/graphs/{server.key}/edit", json={"mask": "l1:1", field: value})
    refused(r, 422, f"{field}: ", "boolean")


@pytest.mark.parametrize("path", ["/graphs/{key}/editor", "/graphs/{key}/images/0",
                                  "/analyses/{key}/cancel", "/defenses/1/cancel"])
@pytest.mark.parametrize("body, words", [
    ({"colour": "red"}, "colour: "), ({"k": 1}, "k: "), ([], "object"), ("x", "object"),
    (5, "object"), (None, "object")])
def test_routes_that_need_nothing_take_an_empty_object_only(server, path, body, words):
    r = server.post(path.format(key=server.key), content=json.dumps(body).encode(),
                    headers={"content-type": "application/json"})
    refused(r, 422, words)


def test_an_empty_object_is_still_taken(server):
    assert server.post(f"/graphs/{server.key}/editor", json={}).status_code == 200
    assert server.post(f"/graphs/{server.key}/images/0", json={}).status_code == 200
    r = server.post(f"/analyses/{server.key}/cancel", json={})  # taken, and refused: it is done
    assert r.status_code == 409 and "not running (it is done)" in r.json()["detail"]


# ------------------------------------------------------------------ methods


@pytest.mark.parametrize("method", ["TRACE", "DELETE", "PUT", "PATCH", "OPTIONS"])
def test_a_method_no_route_takes_is_405_with_allow(server, method):
    for path, allow in [("/graphs/{key}.json", "GET"), ("/graphs/{key}/edit", "POST"),
                        ("/analyses", "POST"), ("/index.json", "GET"),
                        ("/static/js/main.js", "GET, HEAD")]:
        r = server.request(method, path.format(key=server.key))
        refused(r, 405, method, allow)
        assert r.headers["allow"] == allow
        assert r.headers["x-frame-options"] == "DENY"  # an answer like the others
    refused(server.request(method, "/no-such-page"), 404)


def test_methods_over_a_socket(tmp_path):
    """uvicorn, not the test client: TRACE and DELETE without a body are 405, not 411."""
    Workspace(tmp_path).save(synthetic_graph(layers=2, per_layer=3), "synthetic-small")
    with live_server(planted_app(tmp_path)) as url:
        host, port = url.removeprefix("http://").split(":")
        for method, path, status in [("TRACE", "/graphs/synthetic-small.json", 405),
                                     ("DELETE", "/graphs/synthetic-small.json", 405),
                                     ("DELETE", "/graphs/synthetic-small/edit", 405),
                                     ("DELETE", "/nothing", 404)]:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request(method, path, headers={"Host": f"127.0.0.1:{port}"})
                r = conn.getresponse()
                body = json.loads(r.read())
            finally:
                conn.close()
            assert r.status == status and "detail" in body, (method, path, r.status, body)
            if status == 405:
                assert r.getheader("allow") in ("GET", "POST"), r.getheaders()


# ------------------------------------------------------------------ damaged analyses


def test_a_damaged_analysis_reads_damaged_everywhere_and_asking_again_redoes_it(tmp_path):
    with TestClient(planted_app(tmp_path), base_url=LOCAL) as client:
        key = computed(client)["key"]
        path = Workspace(tmp_path).folder(key) / "graph.json"
        path.write_text(path.read_text()[:300])  # cut short, as by a full disk
        for status in (client.get(f"/analyses/{key}.json").json(),
                       client.get("/analyses.json", params=PAIR).json()):
            assert status["state"] == "damaged" and status["graph"] is None, status
            assert f"analysis {key}" in status["error"] and "damaged" in status["error"]
        for url in (f"/graphs/{key}.json", f"/graphs/{key}/pictures.json",
                    f"/graphs/{key}/report.html", f"/compare.json?a={key}&b={key}"):
            refused(client.get(url), 409, f"analysis {key}", "damaged",
                    "ask for its pair again")
        refused(client.post(f"/graphs/{key}/edit", json={"mask": "l1:1"}), 409, "damaged")
        page = client.get(f"/graphs/{key}", headers={"accept": "text/html"})
        assert page.status_code == 409 and page.text.startswith("<!")  # the page says it
        assert key not in [a["key"] for a in client.get("/index.json").json()["analyses"]]
        before = client.app.state.jobs.computed
        assert computed(client)["key"] == key  # computed anew, saved over the damaged one
        assert client.app.state.jobs.computed == before + 1
        assert client.get(f"/graphs/{key}.json").status_code == 200
        assert key in [a["key"] for a in client.get("/index.json").json()["analyses"]]


def test_a_damaged_run_says_to_run_analyze_again(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "graph.json").write_text('{"schema_version": 2, "nodes": [')
    with TestClient(planted_app(tmp_path), base_url=LOCAL) as client:
        status = client.get("/analyses/run-mine.json").json()
        assert status["state"] == "damaged" and "massif analyze" in status["error"], status
        refused(client.get("/graphs/run-mine.json"), 409, "damaged", "massif analyze")


def test_an_unlisted_analysis_is_logged_once_per_reason(tmp_path, caplog):
    Workspace(tmp_path).save(synthetic_graph(layers=2, per_layer=3), "synthetic-small")
    broken = tmp_path / "graphs" / "broken" / "graph.json"
    broken.parent.mkdir()
    broken.write_text("{not JSON")
    with TestClient(planted_app(tmp_path), base_url=LOCAL) as client:
        caplog.set_level(logging.WARNING, "massif.server")
        for _ in range(3):
            assert [a["key"] for a in client.get("/index.json").json()["analyses"]] \
                == ["synthetic-small"]
        broken.write_text("[1, 2]")  # damaged otherwise: said once more
        for _ in range(3):
            client.get("/index.json")
    lines = [r.getMessage() for r in caplog.records if "not listing" in r.getMessage()]
    assert len(lines) == 2 and all("analysis broken" in line for line in lines), lines
    assert str(tmp_path) not in "".join(lines)


# ------------------------------------------------------------------ paths in messages


def test_messages_show_no_absolute_path_a_graph_names(server, tmp_path):
    """A graph made on another dataset (an image folder, named by its absolute path) or with
    a model file: the edit is refused naming them by their last part only."""
    ws = Workspace(server.app.state.workspace.root)
    good = json.loads(ws.graph_path(server.key).read_text())
    for key, part, value, shown in [
            ("other-data", "dataset", "imagefolder:/srv/secret-place/flowers",
             "imagefolder:flowers"),
            ("other-model", "model", "/opt/secret-place/models/net.py:make", "net.py:make")]:
        changed = {**good, part: {"name": value, "fingerprint": "f" * 16}}
        ws.write(f"graphs/{key}/graph.json", json.dumps(changed))
        detail = refused(server.post(f"/graphs/{key}/edit", json={"mask": "l1:1"}), 422,
                         f"analysis {key}", shown)
        assert "secret-place" not in detail and "/srv" not in detail, detail
        assert "/opt" not in detail, detail
