"""``massif.export`` and ``massif report --numbers`` (issue 25, item 1): an analysis's numbers as
JSON and CSV, on a graph built in code whose values are known (the page's export is compared
with these in tests/browser/test_export.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from massif.errors import MassifError
from massif.export import Numbers, numbers, to_csv
from tests.helpers.cli import run_massif
from tests.helpers.synthetic import synthetic_graph


@pytest.fixture()
def run(tmp_path):
    graph = synthetic_graph(layers=3, per_layer=4, seed=5)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "graph.json").write_text(graph.to_json())
    return graph, folder


def test_numbers_hold_each_node_at_the_strength_viewed(run):
    graph, _ = run
    k = 3
    node = next(n for n in graph.nodes if n.group == "emphasized")
    n = numbers(graph, key="x", k=k, pins=[node.id], masked=[graph.nodes[0].id])
    row = next(r for r in n.nodes if r["id"] == node.id)
    assert row["activation"] == node.activation[k] and row["activation_clean"] == node.activation[0]
    assert row["importance_target"] == node.importance_target[k]
    flipped = node.flip_strength is not None and node.flip_strength <= graph.attack.strengths[k]
    assert row["pinned"] is True and row["flipped"] == flipped
    assert [r["deleted"] for r in n.nodes].count(True) == 1
    assert all(r["flipped"] is None for r in n.nodes if r["group"] == "shared")
    assert [r["attack_success_rate"] for r in n.asr] == graph.metrics.attack_success_rate
    e = graph.edges[0]
    assert n.edges[0]["change"] == e.influence_attacked - e.influence_benign
    assert set(n.csv()) == {"nodes.csv", "edges.csv", "asr.csv"}
    rows = list(csv.DictReader(io.StringIO(n.csv()["nodes.csv"])))
    assert len(rows) == len(graph.nodes) and rows[0]["pinned"] in ("true", "false")


def test_bad_views_are_one_line(run):
    graph, _ = run
    with pytest.raises(MassifError, match="k=99"):
        numbers(graph, k=99)
    with pytest.raises(MassifError, match="nolayer:1 is not in this analysis"):
        numbers(graph, masked=["nolayer:1"])


def test_csv_quotes_what_needs_it_and_writes_nulls_empty():
    text = to_csv([{"a": 'x,"y"', "b": None, "c": 2.0, "d": True}], ["a", "b", "c", "d"])
    assert text == 'a,b,c,d\n"x,""y""",,2,true\n'


def test_massif_report_numbers_writes_json_and_csv_with_the_curves_beside(run, tmp_path):
    graph, folder = run
    curves = {
        "model": "m", "dataset": "d", "benign": "B", "target": "T", "attack": "fgm",
        "targeted": True, "epsilon": 3.5, "n_images": 10, "n_target_images": 10,
        "n_emphasized": 2, "ks": [1], "k_common": 1, "random_draws": 2, "seed": 0,
        "adaptive": False, "seconds": 1.0,
        "curves": [{"ranking": "random", "description": "random", "order": [], "points": [
            {"k": 0, "asr": 0.9, "clean_accuracy": 0.8, "target_accuracy": 0.7, "margin": 1.0,
             "n_correct": 9},
            {"k": 1, "asr": 0.5, "asr_std": 0.1, "clean_accuracy": 0.7, "target_accuracy": 0.6,
             "margin": 0.5, "n_correct": 8}], "auc_k": 0.5, "auc_cost": 0.4}],
    }
    from massif.edit.curves import Curves

    (folder / "curves.json").write_text(Curves.model_validate(curves).model_dump_json())
    out = tmp_path / "numbers"
    r = run_massif("report", str(folder), "--numbers", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "asr.csv", "curves.csv", "edges.csv", "nodes.csv", "numbers.json"]
    saved = Numbers.model_validate(json.loads((out / "numbers.json").read_text()))
    assert saved.key == "run" and saved.view.strength_index == len(graph.attack.strengths) - 1
    assert saved.nodes == numbers(graph).nodes
    rows = list(csv.DictReader(io.StringIO((out / "curves.csv").read_text())))
    assert [(r["ranking"], r["k"], r["asr"], r["asr_std"]) for r in rows] == [
        ("random", "0", "0.9", ""), ("random", "1", "0.5", "0.1")]
    assert not (tmp_path / "report.html").exists()


def test_massif_report_needs_out_or_numbers(run):
    _, folder = run
    r = run_massif("report", str(folder))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "massif: error: give --out FILE (the report), --numbers FOLDER (its numbers) or both"]
