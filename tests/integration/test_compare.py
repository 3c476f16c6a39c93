"""``massif compare`` through the real console script, on graphs written by hand whose split is
known: which neurons are emphasized or suppressed in A only, in both and in B only, at the
strengths asked, and what is left out when the models differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from massif.comparison import Comparison
from massif.schemas import Graph
from tests.helpers.cli import run_massif
from tests.helpers.synthetic import synthetic_graph

STRENGTHS = [0.0, 1.0, 2.0, 3.0]


def hand_graph(nodes: dict[str, tuple[str, float | None, float | None]], asr: list[float],
               crossed: list[list[float]], fingerprint: str = "hand000000000000") -> Graph:
    """Layers ``l1``, ``l2``, strengths 0 to 3; ``nodes``: id → (group, flip strength,
    vulnerability); no edges."""
    g = synthetic_graph(layers=2, per_layer=1, steps=len(STRENGTHS)).model_dump()
    g["model"] = {"name": "hand", "fingerprint": fingerprint}
    g["layers"] = ["l1", "l2"]
    g["attack"]["strengths"] = STRENGTHS
    g["metrics"]["attack_success_rate"] = asr
    g["metrics"]["divergence"]["crossed"] = crossed
    g["metrics"]["divergence_layer"] = None
    g["nodes"] = [{"id": nid, "layer": nid.split(":")[0], "channel": int(nid.split(":")[1]),
                   "group": group, "flip_strength": flip, "vulnerability": vul,
                   "importance_benign": [0.5] * 4, "importance_target": [0.5] * 4,
                   "activation": [1.0] * 4}
                  for nid, (group, flip, vul) in nodes.items()]
    g["edges"] = []
    return Graph.model_validate(g)


A = {  # at ε = 3, every one that moves has flipped but l2:0
    "l1:0": ("emphasized", 1.0, 0.9),
    "l1:1": ("emphasized", 3.0, 0.3),
    "l1:2": ("suppressed", 2.0, 0.5),
    "l1:3": ("shared", None, None),
    "l2:0": ("emphasized", None, None),  # never flips
    "l2:1": ("suppressed", 1.0, 0.8),
}
B = {  # at ε = 2, l2:2 has not flipped yet (it does at 3)
    "l1:0": ("emphasized", 2.0, 0.6),
    "l1:1": ("suppressed", 1.0, 0.7),
    "l1:3": ("emphasized", 1.0, 0.95),
    "l2:0": ("emphasized", 1.0, 0.85),
    "l2:2": ("suppressed", 3.0, 0.2),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    graphs = {
        "a": hand_graph(A, [0.0, 0.2, 0.5, 0.9], [[0, 0], [0, 0.2], [0, 0.5], [0.1, 0.9]]),
        "b": hand_graph(B, [0.0, 0.1, 0.4, 0.7], [[0, 0], [0.1, 0.2], [0.4, 0.5], [0.6, 0.7]]),
        "other": hand_graph(B, [0.0, 0.1, 0.4, 0.7], [[0, 0], [0.1, 0.2], [0.4, 0.5],
                                                       [0.6, 0.7]], "other00000000000"),
    }
    for name, g in graphs.items():
        g.save(root / name / "graph.json")
    return {name: root / name for name in graphs}


def rows_after(text: str, header: str) -> list[list[str]]:
    """The two layer rows under the table whose header starts with ``header``."""
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(header))
    return [ln.split() for ln in lines[i + 1:i + 3]]


def test_compare_splits_the_neurons_as_built_at_the_strengths_asked(runs):
    done = run_massif("compare", str(runs["a"]), f"{runs['b']}@2.5", timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    lines = text.splitlines()
    assert lines[0].startswith("A: Sneaker → Sandal") and lines[0].endswith("at ε = 3, model hand")
    assert lines[1].endswith("at ε = 2, model hand")  # the largest strength up to 2.5
    assert lines[5].split() == ["ASR", "90%", "40%"]
    assert lines[6].split() == ["divergence", "l2", "l1"]
    assert rows_after(text, "crossed by") == [["l1", "10%", "40%"], ["l2", "90%", "50%"]]
    assert rows_after(text, "emphasized neurons") == [["l1", "1", "1", "1"],
                                                      ["l2", "0", "0", "1"]]
    assert rows_after(text, "suppressed neurons") == [["l1", "1", "0", "1"],
                                                      ["l2", "1", "0", "0"]]
    assert lines[-5:] == [
        "emphasized in A only (vulnerability): l1:1 (0.30)",
        "emphasized in B only (vulnerability): l1:3 (0.95), l2:0 (0.85)",
        "suppressed in A only (vulnerability): l2:1 (0.80), l1:2 (0.50)",
        "suppressed in B only (vulnerability): l1:1 (0.70)",
        "in both, vulnerability B − A: l1:0 -0.30",
    ]


def test_compare_json_names_every_neuron_of_either_graph_with_its_state(runs):
    done = run_massif("compare", str(runs["a"]), str(runs["b"] / "graph.json"), "--json",
                      timeout=120)
    assert done.returncode == 0, done.stderr
    c = Comparison.model_validate_json(done.stdout)
    assert c.same_model and (c.a.strength, c.b.strength) == (3.0, 3.0)  # both at their largest
    assert (c.a.key, c.b.key) == ("a", "b")
    assert [(n.id, n.a, n.b) for n in c.neurons] == [
        ("l1:0", "emphasized", "emphasized"),
        ("l1:1", "emphasized", "suppressed"),
        ("l1:2", "suppressed", None),  # not in B
        ("l1:3", "shared", "emphasized"),
        ("l2:0", None, "emphasized"),  # in A, never flipped
        ("l2:1", "suppressed", None),
        ("l2:2", None, "suppressed"),  # flips at 3 in B
    ]


def test_compare_lists_the_most_vulnerable_and_says_how_many_more(runs):
    done = run_massif("compare", str(runs["a"]), f"{runs['b']}@2", "--most", "1", timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "emphasized in B only (vulnerability): l1:3 (0.95) and 1 more" in lines
    assert "suppressed in A only (vulnerability): l2:1 (0.80) and 1 more" in lines


def test_compare_of_two_models_compares_only_the_attacks(runs):
    done = run_massif("compare", str(runs["b"]), str(runs["other"]), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "The models differ (hand hand000000000000, hand other00000000000)" in done.stdout
    assert "emphasized" not in done.stdout and "suppressed" not in done.stdout
