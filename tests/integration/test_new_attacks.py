"""CW-L2 and APGD-T through the whole pipeline: ``massif analyze --attack``, the graph contract,
``massif edit --graph`` and the Editor's labels, the server's analysis jobs and ``/index.json``.
(Equal to torchattacks: ``tests/unit/test_attacks.py``.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import massif
from massif.attacks import attack_label
from massif.edit import Editor
from massif.schemas import Graph
from massif.server import create_app
from tests.helpers.cli import run_massif
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

LOCAL = "http://127.0.0.1"


@pytest.mark.parametrize("attack, name, norm, top", [("cw-l2", "cw", "l2", 1.0),
                                                     ("apgd-t-linf", "apgd-t", "linf", 0.1)])
def test_analyze_and_edit_with_the_new_attacks_on_the_bundled_model(tmp_path, attack, name,
                                                                     norm, top):
    out = tmp_path / "run"
    proc = run_massif("analyze", "--attack", attack, "--max-images", "24", "--steps", "4",
                      "--no-pictures", "--out", str(out), "--device", "cpu", timeout=600)
    assert proc.returncode == 0, proc.stderr
    graph = Graph.load(out / "graph.json")
    assert (graph.attack.name, graph.attack.norm) == (name, norm)
    assert graph.attack.strengths[-1] == pytest.approx(top)  # the registry's default
    assert attack_label(graph.attack) == attack
    assert graph.metrics.attack_success_rate[-1] > 0.5  # both are strong on this pair
    recipe = ({"steps": 50, "learning_rate": 0.01, "kappa": 0.0} if name == "cw"
              else {"steps": 10, "restarts": 1, "seed": 0})
    assert {k: getattr(graph.attack, k) for k in recipe} == recipe
    emphasized = [n.id for n in graph.nodes if n.group == "emphasized"][:2]
    proc = run_massif("edit", "--graph", str(out / "graph.json"), "--mask", ",".join(emphasized),
                      "--device", "cpu", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"· {attack} targeted ·" in proc.stdout
    editor = Editor.from_graph("bundled", None, graph, device="cpu")
    assert editor.attack.options() == recipe
    result = editor.evaluate(emphasized, adaptive=False)
    assert result.attack == attack
    assert result.transfer_asr.before[-1] == pytest.approx(graph.metrics.attack_success_rate[-1])


def test_the_server_analyses_with_cw_and_names_it_back(tmp_path):
    app = create_app(tmp_path / "ws", planted_model(), planted_data(), device="cpu",
                     pictures=False)
    with TestClient(app, base_url=LOCAL) as client:
        r = client.post("/analyses", json={"benign": "benign", "target": "target",
                                           "attack": "cw-l2"})
        assert r.status_code == 200, r.text
        status = settled(client, f"/analyses/{r.json()['key']}.json", 120)
        assert status["state"] == "done", status
        graph = client.get(f"/graphs/{status['key']}.json").json()
        assert graph["attack"]["name"] == "cw" and graph["attack"]["strengths"][-1] == 1.0
        info = client.get("/index.json").json()
        assert [a["attack"] for a in info["analyses"]] == ["cw-l2"]
        # APGD-T's loss needs 4 classes; the planted model has 3: the job says so
        r = client.post("/analyses", json={"benign": "benign", "target": "target",
                                           "attack": "apgd-t-l2"})
        status = settled(client, f"/analyses/{r.json()['key']}.json", 120)
        assert status["state"] == "error" and "at least 4 classes" in status["error"]


def test_a_python_request_takes_the_new_attacks_and_their_options():
    request = massif.AnalysisRequest(benign="benign", target="target", model=planted_model(),
                                     data=planted_data(),
                                     attack=massif.make_attack("cw-l2", steps=5), device="cpu")
    resolved = request.resolve()
    assert resolved.attack_info.steps == 5 and resolved.strengths[-1] == 1.0
    with pytest.raises(massif.MassifError, match="unknown attack option 'step_ratio' for cw-l2"):
        massif.make_attack("cw-l2", step_ratio=2)
