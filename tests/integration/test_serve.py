"""The HTTP server: in-process (FastAPI TestClient) on graphs built in code and on the tiny
planted model, and over a real socket (uvicorn on 127.0.0.1, and the ``massif serve`` command).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from massif.attacks import attack_names
from massif.schemas import Graph
from massif.server import bind, create_app
from massif.server.answers import AnalysisStatus, NodeDetail, Pictures
from massif.server.listen import Hosts
from massif.store import Workspace
from massif.threads import in_own_thread
from tests.helpers.cli import MASSIF
from tests.helpers.synthetic import live_server, synthetic_graph
from tests.helpers.tiny import CLASSES, Planted, planted_data, planted_model
from tests.helpers.waiting import settled, wait_for

# The in-process client names the server as a browser on this machine does: the app answers
# only to its host names (DNS rebinding; test_a_forged_host_is_refused_over_a_socket).
LOCAL = "http://127.0.0.1:8000"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16  # served as bytes; content does not matter here


@pytest.fixture()
def ws(tmp_path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    w.save(synthetic_graph(layers=3, per_layer=6), "synthetic-small")
    return w


@pytest.fixture()
def client(ws) -> TestClient:
    app = create_app(ws.root, planted_model(), planted_data(), device="cpu", pictures=False)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def wait_done(client: TestClient, key: str, timeout: float = 30) -> AnalysisStatus:
    return AnalysisStatus.model_validate(settled(client, f"/analyses/{key}.json", timeout))


def test_index_json_lists_classes_attacks_and_saved_analyses(client):
    info = client.get("/index.json").json()
    assert [c["name"] for c in info["classes"]] == CLASSES
    assert info["attacks"] == attack_names()  # the registry's (test_attack_registry.py)
    assert info["can_analyze"] is True
    assert [a["key"] for a in info["analyses"]] == ["synthetic-small"]
    assert info["analyses"][0]["same_model"] is False


def test_an_analysis_of_an_attack_the_registry_lacks_is_left_out_of_the_index(client, ws):
    """A graph the contract reads but whose attack name and norm the registry does not pair
    (a hand-edited fgm in L∞) is not listed; the page still loads."""
    odd = synthetic_graph(layers=3, per_layer=6, seed=9)
    odd.attack.norm = "linf"
    ws.save(odd, "odd-attack")
    r = client.get("/index.json")
    assert r.status_code == 200, r.text
    assert [a["key"] for a in r.json()["analyses"]] == ["synthetic-small"]


def test_graph_json_validates_and_equals_the_saved_graph(client, ws):
    r = client.get("/graphs/synthetic-small.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert Graph.model_validate(r.json()) == ws.load("synthetic-small")


def test_every_page_has_a_json_twin(client, ws):
    graph = ws.load("synthetic-small")
    node = next(n for n in graph.nodes if n.layer == graph.layers[1])
    for page in ["/", "/graphs/synthetic-small", f"/graphs/synthetic-small/nodes/{node.id}"]:
        r = client.get(page)
        assert r.status_code == 200 and "<title>MASSIF</title>" in r.text
        twin = client.get("/index.json" if page == "/" else page + ".json")
        assert twin.status_code == 200 and twin.headers["content-type"] == "application/json"


def test_a_browser_asking_for_a_missing_analysis_or_neuron_gets_the_page_with_404(client, ws):
    """The page says in words what is missing; API clients keep the JSON 404."""
    for path in ["/graphs/no-such-analysis", "/graphs/synthetic-small/nodes/nolayer:1"]:
        r = client.get(path, headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert r.status_code == 404 and "<title>MASSIF</title>" in r.text, path
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"detail"}


def test_node_json_has_its_incoming_edges_strongest_first(client, ws):
    graph = ws.load("synthetic-small")
    node = next(n for n in graph.nodes if n.layer == graph.layers[2])
    detail = NodeDetail.model_validate(client.get(f"/graphs/synthetic-small/nodes/{node.id}.json")
                                       .json())
    assert detail.node == node
    expected = {(e.source, e.target) for e in graph.edges if e.target == node.id}
    assert {(e.source, e.target) for e in detail.incoming} == expected
    strength = [max(e.influence_benign, e.influence_attacked) for e in detail.incoming]
    assert strength == sorted(strength, reverse=True)
    assert detail.picture is None and detail.examples is None


def test_pictures_are_served_by_neuron_id_once_they_exist(client, ws):
    graph = ws.load("synthetic-small")
    node = graph.nodes[4]
    url = f"/graphs/synthetic-small/nodes/{node.id}/picture.png"
    assert client.get(url).status_code == 404
    assert Pictures.model_validate(client.get("/graphs/synthetic-small/pictures.json").json()) \
        == Pictures(pictures={}, examples={})
    ws.write(f"pictures/{graph.model.fingerprint}/{node.layer}/{node.channel}.png", PNG)
    ws.write(f"examples/{graph.model.fingerprint}-{graph.dataset.fingerprint}/{node.layer}/"
             f"{node.channel}.png", PNG + b"x")
    r = client.get(url)
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
    assert client.get(url.replace("picture.png", "examples.png")).content == PNG + b"x"
    pics = client.get("/graphs/synthetic-small/pictures.json").json()
    assert pics == {"pictures": {node.id: url},
                    "examples": {node.id: url.replace("picture", "examples")}}
    detail = client.get(f"/graphs/synthetic-small/nodes/{node.id}.json").json()
    assert detail["picture"] == url


@pytest.mark.parametrize("path", [
    "/graphs/..%2F..%2Fetc%2Fpasswd.json",
    "/graphs/../../etc/passwd",
    "/graphs/synthetic-small/nodes/..%2F..%2F..%2Fetc%2Fpasswd/picture.png",
    "/graphs/synthetic-small/nodes/layer0:..%2F..%2Fsecret/picture.png",
    "/graphs/synthetic-small/nodes/layer0:1/..%2F..%2Fgraph.png",
    "/graphs/%2E%2E/nodes/layer0:1/picture.png",
    "/static/..%2F..%2Fserve.py",
    "/static/../serve.py",
])
def test_file_endpoints_refuse_path_traversal(client, ws, path):
    secret = ws.root.parent / "secret.png"
    secret.write_bytes(PNG)
    (ws.root / "graphs" / "synthetic-small" / "graph.png").write_bytes(PNG)
    r = client.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert r.content != PNG and b"def create_app" not in r.content


def test_a_crafted_graph_cannot_point_its_pictures_outside(tmp_path):
    """Picture paths are built from the graph's model fingerprint and layer names; a graph.json
    (now also read from folders beside the workspace) whose names climb out is refused."""
    g = synthetic_graph(layers=2, per_layer=4, model_fp="../../outside")
    g.save(tmp_path / "runs" / "crafted" / "graph.json")
    secret = tmp_path / "outside" / g.nodes[0].layer / f"{g.nodes[0].channel}.png"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(PNG)
    app = create_app(tmp_path / "runs", planted_model(), planted_data(), device="cpu",
                     pictures=False, cache=tmp_path / "cache")
    with TestClient(app, base_url=LOCAL) as c:
        r = c.get(f"/graphs/run-crafted/nodes/{g.nodes[0].id}/picture.png")
        assert r.status_code in (404, 422) and r.content != PNG
        assert c.get(f"/graphs/run-crafted/nodes/{g.nodes[0].id}.json").status_code == 422


def test_unknown_analysis_neuron_or_class_gives_a_clear_message(client):
    r = client.get("/graphs/no-such-key.json")
    assert r.status_code == 404 and "no analysis 'no-such-key'" in r.json()["detail"]
    r = client.get("/graphs/Bad_Key!.json")
    assert r.status_code == 404 and "lower-case" in r.json()["detail"]
    r = client.get("/graphs/synthetic-small/nodes/layer9:3.json")
    assert r.status_code == 404 and "not a node" in r.json()["detail"]
    r = client.get("/graphs/synthetic-small/nodes/layer0.json")
    assert r.status_code == 404 and "layer:channel" in r.json()["detail"]
    r = client.post("/analyses", json={"benign": "giraffe", "target": "target"})
    assert r.status_code == 422 and "unknown class 'giraffe'" in r.json()["detail"]
    r = client.post("/analyses", json={"benign": 0, "target": 17})
    assert r.status_code == 422 and "out of range" in r.json()["detail"]
    r = client.post("/analyses", json={"benign": 0, "target": 0})
    assert r.status_code == 422 and "same class" in r.json()["detail"]
    r = client.post("/analyses", json={"benign": 0, "target": 1, "attack": "cw"})
    assert r.status_code == 422 and r.json()["detail"].startswith("attack:")
    r = client.post("/analyses", json={"benign": 0, "target": 1, "max_strength": -1})
    assert r.status_code == 422 and "max_strength" in r.json()["detail"]
    r = client.get("/analyses/nothing-here.json")
    assert r.status_code == 404 and "no analysis" in r.json()["detail"]
    r = client.get("/analyses.json", params={"benign": "nope", "target": "target"})
    assert r.status_code == 422 and "unknown class" in r.json()["detail"]


def test_a_new_pair_is_computed_on_demand_saved_and_found_again(client, ws):
    request = {"benign": "benign", "target": 1, "attack": "fgm", "max_strength": 3.0}
    first = AnalysisStatus.model_validate(client.post("/analyses", json=request).json())
    assert first.state in ("queued", "running", "done")
    done = wait_done(client, first.key)
    assert done.state == "done", done.error
    assert ws.has(first.key)
    graph = Graph.model_validate(client.get(done.graph).json())
    assert graph.benign.name == "benign" and graph.target.name == "target"
    assert graph.attack.strengths[-1] == 3.0
    groups = {n.id: n.group for n in graph.nodes}  # the planted truth (tests/tiny.py)
    assert groups == {f"{lay}:{i}": g for lay in ("l1", "l2")
                      for i, g in enumerate(["suppressed", "emphasized", "shared"])}
    # A second request (POST or lookup) finds it at once and computes nothing.
    computed = client.app.state.jobs.computed
    again = client.post("/analyses", json={**request, "benign": 0})
    assert again.json()["state"] == "done" and again.json()["key"] == first.key
    looked_up = client.get("/analyses.json", params={**request, "benign": 0}).json()
    assert looked_up["state"] == "done"
    assert client.app.state.jobs.computed == computed
    assert first.key in [a["key"] for a in client.get("/index.json").json()["analyses"]]


def test_analyses_written_by_analyze_out_are_served_and_never_written_to(tmp_path):
    """``massif analyze --out runs/NAME`` writes ``runs/NAME/graph.json``; ``massif serve runs``
    lists and serves those, and those of a workspace one level down, under keys made from their
    place, which never answer a request: a run made with other options (here the default
    pair's own graph, as if made with ``--layers``) is not taken for the pair's analysis."""
    from massif.store import graph_key

    root = tmp_path / "runs"
    first = synthetic_graph(layers=3, per_layer=6)
    first.save(root / "Sneaker_Sandal" / "graph.json")
    nested = synthetic_graph(layers=2, per_layer=4, benign=(0, "T-shirt/top"))
    Workspace(root / "older").save(nested, graph_key(nested))
    (root / "broken").mkdir()
    (root / "broken" / "graph.json").write_text("{")
    files = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    app = create_app(root, planted_model(), planted_data(), device="cpu", pictures=False)
    with TestClient(app, base_url=LOCAL) as c:
        listed = {a["key"]: a["benign"] for a in c.get("/index.json").json()["analyses"]}
        nested_key = f"run-older-graphs-{graph_key(nested)}"
        assert listed == {"run-sneaker-sandal": "Sneaker", nested_key: "T-shirt/top"}
        served = Graph.model_validate(c.get("/graphs/run-sneaker-sandal.json").json())
        assert served.nodes == first.nodes
        assert c.get(f"/graphs/{nested_key}").status_code == 200
        assert c.get("/graphs/run-broken.json").status_code == 409
        assert c.get(f"/analyses/{graph_key(first)}.json").status_code == 404
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == files


def test_default_request_key_is_the_demo_key(tmp_path):
    """The page's default pair is the one ``massif demo`` saves (same workspace key)."""
    from massif import AnalysisRequest

    app = create_app(tmp_path, "bundled", device="cpu")
    engine = app.state.engine
    choice = engine.default_choice()
    assert (engine.class_names[int(choice.benign)], engine.class_names[int(choice.target)],
            choice.attack, choice.max_strength) == ("Sneaker", "Sandal", "fgm", 3.5)
    demo = AnalysisRequest(benign="Sneaker", target="Sandal", attack="fgm").resolve()
    assert engine.resolve(choice).key == demo.key


def test_without_a_dataset_saved_analyses_are_served_and_new_ones_refused(ws):
    app = create_app(ws.root, planted_model(), None)
    with TestClient(app, base_url=LOCAL) as c:
        info = c.get("/index.json").json()
        assert info["can_analyze"] is False and "--data" in info["why_not"]
        assert c.get("/graphs/synthetic-small.json").status_code == 200
        r = c.post("/analyses", json={"benign": 0, "target": 1})
        assert r.status_code == 422 and "no default dataset" in r.json()["detail"]


# ------------------------------------------------------------------ editing (the edit stage)


@pytest.fixture()
def planted_key(client):
    status = client.post("/analyses", json={"benign": "benign", "target": "target"}).json()
    done = wait_done(client, status["key"])
    assert done.state == "done", done.error
    return done.key


def test_edit_json_answers_what_the_python_api_answers(client, planted_key):
    from massif.edit import Editor, EditResult

    r = client.post(f"/graphs/{planted_key}/edit", json={"mask": ["l1:1"]})
    assert r.status_code == 200, r.text
    result = EditResult.model_validate(r.json())
    assert result.mask == ["l1:1"] and result.mode == "zero"
    # Deleting the target feature stops the targeted attack (tests/tiny.py): z_t <= 0.4 < z_b.
    assert result.adaptive_asr.after[-1] == 0.0 and result.transfer_asr.after[-1] == 0.0
    assert result.adaptive_asr.before[-1] == 1.0
    graph = Graph.model_validate(client.get(f"/graphs/{planted_key}.json").json())
    direct = Editor.from_graph(planted_model(), planted_data(), graph, device="cpu")
    expected = direct.evaluate(["l1:1"])
    assert result.model_dump(exclude={"seconds"}) == expected.model_dump(exclude={"seconds"})
    mean = EditResult.model_validate(client.post(f"/graphs/{planted_key}/edit", json={
        "mask": "l1:1", "mode": "mean"}).json())
    assert mean.mode == "mean"
    quick = EditResult.model_validate(client.post(f"/graphs/{planted_key}/edit", json={
        "mask": ["l1:1"], "adaptive": False}).json())  # what the page asks for first
    assert quick.adaptive_asr is None and quick.transfer_asr == result.transfer_asr


def test_images_answer_what_the_python_api_answers(client, planted_key):
    from massif.edit import Editor
    from massif.edit.one_image import Gallery, ImageDetail

    graph = Graph.model_validate(client.get(f"/graphs/{planted_key}.json").json())
    direct = Editor.from_graph(planted_model(), planted_data(), graph, device="cpu")
    for k in (None, 0, 3):
        r = client.post(f"/graphs/{planted_key}/images", json={"k": k})
        assert r.status_code == 200, r.text
        assert Gallery.model_validate(r.json()) == direct.gallery(k)
    gallery = Gallery.model_validate(client.post(f"/graphs/{planted_key}/images",
                                                 json={}).json())
    assert gallery.n_correct == 6 and gallery.n_success == 6  # every (1, 0.2) flips at ε_max
    assert gallery.names == {0: "benign", 1: "target"}
    r = client.post(f"/graphs/{planted_key}/images/2", json={})
    assert r.status_code == 200, r.text
    detail = ImageDetail.model_validate(r.json())
    assert detail == direct.image(2)
    assert detail.crossing[0] is None and detail.crossing[-1] == "l1"  # tiny.py: identity layers
    png = client.get(f"/graphs/{planted_key}/dataset/{detail.image}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    for path, body, status, words in [
            ("/images/6", {}, 422, "no image 6"), ("/images/-1", {}, 422, "no image -1"),
            ("/images/abc", {}, 422, "position"), ("/images", {"k": 99}, 422, "strength index"),
            ("/images", {"k": "1"}, 422, "k"), ("/images", {"k": True}, 422, "k"),
            ("/images", {"k": 1, "x": 2}, 422, "x"), ("/dataset/999.png", None, 404, "999")]:
        r = (client.get(f"/graphs/{planted_key}{path}") if body is None
             else client.post(f"/graphs/{planted_key}{path}", json=body))
        assert r.status_code == status and words in r.json()["detail"], (path, r.text)


@pytest.mark.parametrize("mask, status, words", [
    ("l9:1", 422, "unknown layer"),
    ("l1:7", 422, "l1"),
    ("nonsense", 422, "layer:channel"),
    ("", 422, "empty"),
    ("l1:0,l1:1,l1:2", 422, "whole layer"),
])
def test_bad_edit_requests_get_a_clear_message(client, planted_key, mask, status, words):
    r = client.post(f"/graphs/{planted_key}/edit", json={"mask": mask})
    assert r.status_code == status and words in r.json()["detail"], r.text


def test_edit_of_an_unknown_analysis_or_another_model_is_refused(client):
    r = client.post("/graphs/no-such-key/edit", json={"mask": "l1:1"})
    assert r.status_code == 404
    r = client.post("/graphs/synthetic-small/edit", json={"mask": "layer0:1"})
    assert r.status_code == 422 and "model" in r.json()["detail"]


def test_heavy_requests_cannot_be_set_off_cross_site(client, planted_key):
    """A link or image (GET), a form (no JSON content type) or another origin's script cannot
    make the server compute."""
    url = f"/graphs/{planted_key}/edit"
    assert client.get(url, params={"mask": "l1:1"}).status_code == 405
    assert client.get(f"/graphs/{planted_key}/edit.json", params={"mask": "l1:1"}) \
        .status_code == 404
    form = client.post(url, data={"mask": "l1:1"})
    assert form.status_code == 415 and "content-type" in form.json()["detail"]
    other = client.post(url, json={"mask": "l1:1"}, headers={"origin": "http://evil.example"})
    assert other.status_code == 403
    site = client.post(url, json={"mask": "l1:1"}, headers={"sec-fetch-site": "cross-site"})
    assert site.status_code == 403
    same = client.post(url, json={"mask": "l1:1"}, headers={"origin": LOCAL})
    assert same.status_code == 200, same.text


@pytest.mark.parametrize("path", ["/", "/index.json", "/graphs/synthetic-small",
                                  "/graphs/synthetic-small.json", "/graphs/no-such-key.json",
                                  "/compare", "/static/js/main.js", "/static/d3.min.js"])
def test_pages_and_json_carry_the_security_headers(client, path):
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    policy = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
    assert script_src.split()[1:] == ["'self'", "'unsafe-eval'"]  # no inline script


def test_the_report_download_and_the_api_page_keep_only_the_framing_rule(client):
    """Both run scripts written inline (the report opens from disk; /api is FastAPI's page)."""
    for path in ("/graphs/synthetic-small/report.html", "/api"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert r.headers["x-frame-options"] == "DENY", path


@pytest.mark.parametrize("served_on, header, accepted", [
    ("127.0.0.1", "127.0.0.1:8000", True), ("127.0.0.1", "localhost:9000", True),
    ("127.0.0.1", "LocalHost", True), ("127.0.0.1", "[::1]:8000", True),
    ("127.0.0.1", "evil.example:8000", False), ("127.0.0.1", "127.0.0.1.evil.example", False),
    ("127.0.0.1", "10.0.0.5:8000", False), ("127.0.0.1", "127.0.0.1:8000:1", False),
    ("127.0.0.1", "", False), ("127.0.0.1", None, False),
    ("::1", "[::1]:8000", True), ("::1", "[0:0::1]:8000", True),
    ("myhost.lan", "myhost.lan:8000", True), ("myhost.lan", "MYHOST.LAN.", True),
    ("myhost.lan", "localhost:8000", True), ("myhost.lan", "other.lan:8000", False),
    ("myhost.lan", "10.0.0.5:8000", False),
    ("0.0.0.0", "10.0.0.5:8000", True), ("0.0.0.0", "[fe80::1]:8000", True),
    ("0.0.0.0", socket.gethostname() + ":8000", True), ("0.0.0.0", "localhost", True),
    ("0.0.0.0", "evil.example:8000", False), ("::", "evil.example", False),
])
def test_the_host_names_answered_follow_the_address_served_on(served_on, header, accepted):
    hosts = Hosts(served_on)
    assert hosts.accepts(header) is accepted
    if not accepted:
        assert "--host" in hosts.refusal(header) and "127.0.0.1" in hosts.refusal(header)


def raw_request(url: str, method: str, path: str, host: str,
                headers: dict[str, str] | None = None, body: bytes | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a socket to ``url``'s port with ``Host: host`` as written."""
    address, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(address, int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_a_forged_host_is_refused_over_a_socket(ws):
    """DNS rebinding: a page on evil.example, its name made to resolve to 127.0.0.1, is
    same-origin with the server in the browser, but its requests name evil.example in Host.
    Those are refused (421, saying which names are answered and how to serve under another);
    the server's own names, with any port, are served."""
    app = create_app(ws.root, planted_model(), planted_data(), device="cpu", pictures=False)
    with live_server(app) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
            for path in ("/index.json", "/graphs/synthetic-small.json",
                         "/graphs/synthetic-small/report.html", "/"):
                status, headers, body = raw_request(url, "GET", path, host)
                assert status == 421, (host, path, status)
                assert headers["content-type"] == "application/json"
                detail = json.loads(body)["detail"]
                assert "127.0.0.1, localhost, [::1] (any port)" in detail, detail
                assert "massif serve --host" in detail and "synthetic" not in detail
                assert headers["x-frame-options"] == "DENY"
        status, _, body = raw_request(
            url, "POST", "/analyses", f"evil.example:{port}",
            {"origin": f"http://evil.example:{port}", "content-type": "application/json"},
            json.dumps({"benign": "benign", "target": "target"}).encode())
        assert status == 421 and not app.state.jobs.computed, body
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}",
                     "127.0.0.1:9000"):  # (another port: an ssh tunnel's)
            status, headers, body = raw_request(url, "GET", "/index.json", host)
            assert status == 200, (host, body[:300])
            assert [a["key"] for a in json.loads(body)["analyses"]] == ["synthetic-small"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_edit_preview_is_the_first_images_of_the_same_analysis(tmp_path):
    from massif.edit import Editor, EditResult
    from massif.server.answers import PREVIEW_IMAGES

    app = create_app(tmp_path, "bundled", device="cpu", max_images=PREVIEW_IMAGES + 50,
                     pictures=False)
    with TestClient(app, base_url=LOCAL) as c:
        key = c.post("/analyses", json={"benign": "Sneaker", "target": "Sandal"}).json()["key"]
        assert wait_done(c, key, timeout=120).state == "done"
        ready = c.post(f"/graphs/{key}/editor", json={}).json()  # the page's warm-up
        assert (ready["n_images"], ready["preview_images"]) == (PREVIEW_IMAGES + 50,
                                                                PREVIEW_IMAGES)
        url, mask = f"/graphs/{key}/edit", "mixed4a:12,mixed4b:3"
        preview = EditResult.model_validate(c.post(url, json={"mask": mask,
                                                              "preview": True}).json())
        full = EditResult.model_validate(c.post(url, json={"mask": mask}).json())
    assert (preview.n_images, preview.n_sample) == (PREVIEW_IMAGES, PREVIEW_IMAGES)
    assert preview.adaptive_asr is None
    assert (full.n_images, full.n_sample) == (PREVIEW_IMAGES + 50, 1000)
    # the preview is the same measurement on the first images: the Python API agrees
    editor = Editor("bundled", benign="Sneaker", target="Sandal", device="cpu",
                    max_images=PREVIEW_IMAGES, sample_size=PREVIEW_IMAGES)
    expected = editor.evaluate(mask, adaptive=False)
    assert preview.model_dump(exclude={"seconds"}) == expected.model_dump(exclude={"seconds"})


def test_defense_and_export_over_http(client, planted_key, tmp_path):
    from massif.edit import DefenseResult

    r = client.post(f"/graphs/{planted_key}/defense", json={"budget": 2})
    assert r.status_code == 202, r.text
    job = settled(client, f"/defenses/{r.json()['id']}.json")
    assert job["state"] == "done", job
    defense = DefenseResult.model_validate(job["result"])
    assert defense.greedy and "l1:1" in defense.greedy[-1].mask or \
        "l2:1" in defense.greedy[-1].mask  # the target feature goes first
    assert client.post(f"/graphs/{planted_key}/defense",
                       json={"budget": 0}).status_code == 422
    assert client.get("/defenses/999999.json").status_code == 404
    before = set(os.listdir(tempfile.gettempdir()))
    r = client.post(f"/graphs/{planted_key}/edited-model.pt", json={"mask": "l1:1"})
    assert r.status_code == 200
    bad = client.post(f"/graphs/{planted_key}/edited-model.pt", json={"mask": "l9:1"})
    assert bad.status_code == 422
    assert set(os.listdir(tempfile.gettempdir())) - before == set()  # no temp litter
    (tmp_path / "edited.pt").write_bytes(r.content)
    exported = torch.load(tmp_path / "edited.pt", weights_only=True)
    assert exported["mask"] == ["l1:1"]
    assert set(exported["state_dict"]) == set(Planted().state_dict())


# ------------------------------------------------------------------ over a real socket


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """uvicorn on 127.0.0.1 (a free port) serving the bundled model, 64 images per class."""
    root = tmp_path_factory.mktemp("live")
    app = create_app(root, "bundled", device="cpu", max_images=64, batch_size=64,
                     picture_steps=32)
    with live_server(app) as url:
        yield url, app


def test_two_browsers_asking_for_the_same_pair_share_one_computation(live):
    url, app = live
    request = {"benign": "Pullover", "target": "Coat", "attack": "fgsm"}
    barrier = threading.Barrier(2)

    def ask() -> dict:
        barrier.wait()
        return httpx.post(f"{url}/analyses", json=request, timeout=30).json()

    before = app.state.jobs.computed
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: ask(), range(2))
    assert a["key"] == b["key"] and a["job"] == b["job"] and a["job"] is not None

    def finished() -> dict | None:
        status = httpx.get(f"{url}/analyses/{a['key']}.json", timeout=10).json()
        assert 0.0 <= status["progress"] <= 1.0, status
        return None if status["state"] in ("queued", "running") else status

    status = wait_for(finished, 90, "the shared analysis", every=0.2)
    assert status["state"] == "done", status
    assert app.state.jobs.computed == before + 1
    graph = Graph.model_validate(httpx.get(f"{url}{status['graph']}", timeout=10).json())
    assert (graph.benign.name, graph.target.name, graph.attack.norm) == ("Pullover", "Coat",
                                                                         "linf")
    assert graph.benign.n_images == 64 and graph.attack.strengths[-1] == 0.1
    # The analysis came with pictures of every neuron of its graph, served as PNGs.
    pics = httpx.get(f"{url}/graphs/{a['key']}/pictures.json", timeout=10).json()
    assert set(pics["pictures"]) == set(pics["examples"]) == {n.id for n in graph.nodes}
    for kind in ("pictures", "examples"):
        r = httpx.get(url + pics[kind][graph.nodes[0].id], timeout=10)
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def test_live_server_json_endpoints_validate(live):
    url, _ = live
    info = httpx.get(f"{url}/index.json", timeout=10).json()
    assert len(info["classes"]) == 10 and info["classes"][9]["name"] == "Ankle boot"
    assert info["classes"][0]["name"] == "T-shirt/top"
    r = httpx.get(f"{url}/graphs/%2e%2e%2f%2e%2e%2fpasswd.json", timeout=10)
    assert r.status_code == 404
    r = httpx.get(f"{url}/static/d3.min.js", timeout=10)
    assert r.status_code == 200 and "d3js.org v7.9.2" in r.text[:100]


def listening_address(port: int) -> str | None:
    """The local address a TCP socket listens on at ``port`` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, state = fields[1], fields[3]
            host, port_hex = addr.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                return host
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_massif_serve_binds_loopback_prints_its_address_and_serves(tmp_path):
    Workspace(tmp_path).save(synthetic_graph(layers=2, per_layer=3), "synthetic-tiny")
    port = free_port()
    proc = subprocess.Popen([MASSIF, "serve", str(tmp_path), "--port", str(port), "--device",
                             "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"MASSIF is serving on http://127.0.0.1:{port}"), line
        assert listening_address(port) == "0100007F"  # 127.0.0.1, not 0.0.0.0
        r = httpx.get(f"http://127.0.0.1:{port}/graphs/synthetic-tiny.json", timeout=10)
        assert r.status_code == 200 and Graph.model_validate(r.json()).layers == ["layer0",
                                                                                   "layer1"]
        forged = httpx.get(f"http://127.0.0.1:{port}/graphs/synthetic-tiny.json", timeout=10,
                           headers={"host": f"evil.example:{port}"})
        assert forged.status_code == 421 and "--host" in forged.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(15)


def test_massif_serve_on_a_port_in_use_gives_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([MASSIF, "serve", str(tmp_path), "--port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"massif: error: port {port} on 127.0.0.1 is already in use; stop the other server "
        "or choose another port with --port"]
    assert "Traceback" not in r.stderr + r.stdout


def openmp_workers() -> int:
    """This process's threads that Python did not start (OpenMP's workers, here)."""
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def test_no_thread_keeps_an_openmp_team_once_the_server_is_idle(tmp_path):
    """Every thread that runs torch keeps OpenMP workers while it lives, and idle ones slow the
    others down (``massif.threads``). After an analysis, an editor build, edits and a defense
    search, the server's threads hold none: those that ran torch have ended."""
    app = create_app(tmp_path / "ws", "bundled", device="cpu", max_images=64, batch_size=64,
                     pictures=False)
    with live_server(app) as url:
        # the test runner's own team (if any), once the loading thread's workers have left
        idle, deadline = openmp_workers(), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if openmp_workers() == idle:
                break
            idle = openmp_workers()
        status = httpx.post(f"{url}/analyses", json={"benign": "Sneaker", "target": "Sandal"},
                            timeout=30).json()
        status = settled(httpx, f"{url}/analyses/{status['key']}.json", 90, every=0.2)
        assert status["state"] == "done", status
        key = status["key"]
        assert httpx.post(f"{url}/graphs/{key}/editor", json={}, timeout=60).status_code == 200
        graph = Graph.model_validate(httpx.get(f"{url}{status['graph']}", timeout=10).json())
        edit = httpx.post(f"{url}/graphs/{key}/edit", json={"mask": [graph.nodes[0].id]},
                          timeout=60)
        assert edit.status_code == 200, edit.text
        job = httpx.post(f"{url}/graphs/{key}/defense", json={"budget": 1}, timeout=30).json()
        job = settled(httpx, f"{url}/defenses/{job['id']}.json", 90, every=0.2)
        assert job["state"] == "done", job
        # A thread's OpenMP workers leave shortly after it ends; a request pool's idle thread
        # (that would keep them for 10 s) must not be what ran torch.
        settle = time.monotonic() + 5
        while openmp_workers() > idle and time.monotonic() < settle:
            time.sleep(0.1)
        assert openmp_workers() <= idle
        assert not [t.name for t in threading.enumerate() if t.name == "massif-analyses"]


def test_accepted_connections_send_at_once():
    """``bind`` names TCP, so asyncio (as uvicorn uses it) turns Nagle's algorithm off on every
    accepted connection; with it on, each response's body waited for the client's delayed ACK
    (44 ms per request on a kept-alive connection)."""
    import asyncio

    sock = bind("127.0.0.1", 0)

    async def main() -> int:
        seen: list[int] = []

        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await reader.read()  # until the server closes it
        writer.close()
        server.close()
        await server.wait_closed()
        return seen[0]

    # a loop of its own, in a thread of its own (the test runner's thread may hold one)
    assert in_own_thread(lambda: asyncio.run(main())) != 0
