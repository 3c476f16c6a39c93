"""The defense search's trade-off (issue 26, item 4): the Pareto front of ASR against clean
accuracy over every mask it measured, and a search that starts from neurons already deleted;
on the planted model (tests/helpers/tiny.py), where every mask's numbers are known exactly."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import massif
from massif.edit import Editor
from massif.edit.defense import FrontPoint, pareto_front
from massif.server import create_app
from massif.store import Workspace
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

STRENGTHS = [3.5 * i / 7 for i in range(8)]
LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def planted():
    """The planted model: z_b = l2:0 + l2:2 = x0 + 0.5, z_t = l2:1 + 0.8·l2:2 = x1 + 0.4;
    benign images (1, 0.2), target images (0, 1), and the attack takes the benign ones to
    (0, 1). The all-class sample is both classes' 12 images."""
    return Editor(planted_model(), planted_data(), benign="benign", target="target",
                  strengths=STRENGTHS, device="cpu")


def numbers(p) -> tuple[float, float, float]:
    return (p.adaptive_asr, p.clean_accuracy, p.clean_accuracy_benign)


def test_pareto_front_keeps_the_masks_no_other_beats():
    def pt(asr: float, acc: float, name: str) -> FrontPoint:
        return FrontPoint(size=1, mask=[name], adaptive_asr=asr, clean_accuracy=acc,
                          clean_accuracy_benign=1.0, source="random")

    pts = [pt(0.8, 0.9, "a"), pt(0.6, 0.8, "c"), pt(0.5, 0.85, "b"), pt(0.1, 0.7, "d"),
           pt(0.1, 0.6, "e"), pt(0.8, 0.9, "a2"), pt(0.9, 0.95, "f"), pt(0.0, 0.2, "g")]
    assert [p.mask[0] for p in pareto_front(pts)] == ["f", "a", "b", "d", "g"]
    assert pareto_front([]) == []


def test_the_front_over_greedy_and_random_masks(planted):
    d = planted.suggest_defense(1, candidates=["l1:1", "l1:2"], random_draws=2)
    assert d.start == [] and d.from_start is None
    assert numbers(d.before) == (1.0, 1.0, 1.0)
    # deleting the target feature stops the attack and the target class with it: 6 of 12 right
    (step,) = d.greedy
    assert step.mask == ["l1:1"] and numbers(step) == (0.0, 0.5, 1.0)
    # the random draws come from l1:0 (the benign feature: no benign image right, ASR 0) and
    # l1:2 (the shared constant: nothing changes)
    expected = {"l1:0": (0.0, 0.5, 0.0), "l1:2": (1.0, 1.0, 1.0)}
    (rnd,) = d.random
    for mask, a, c, cb in zip(rnd.masks, rnd.adaptive_asr_draws, rnd.clean_accuracy_draws,
                              rnd.clean_accuracy_benign_draws):
        assert (a, c, cb) == expected[mask[0]]
    # the front: the unedited model, then the greedy pick (a random mask equal to either
    # comes later and is left out)
    assert [(p.source, p.mask, numbers(p)) for p in d.front] == [
        ("unedited", [], (1.0, 1.0, 1.0)), ("greedy", ["l1:1"], (0.0, 0.5, 1.0))]
    text = d.table()
    assert "started from the unedited model" in text and "Pareto front" in text


def test_a_search_from_neurons_already_deleted(planted):
    """With the shared constant l2:2 deleted, z_b = x0 and z_t = x1: the attack still wins
    everywhere. Deleting the benign feature l1:0 on top leaves no benign image right."""
    picks = []
    d = planted.suggest_defense(1, candidates=["l1:0", "l2:2"], start=["l2:2"], random_draws=2,
                                found=picks.append)
    assert d.start == ["l2:2"]
    assert d.from_start is not None and d.from_start.mask == ["l2:2"]
    assert d.from_start.size == 1 and numbers(d.from_start) == (1.0, 1.0, 1.0)
    (step,) = d.greedy
    assert step.added == "l1:0" and step.mask == ["l2:2", "l1:0"] and step.size == 2
    assert numbers(step) == (0.0, 0.5, 0.0)
    assert picks == [["l1:0"]]  # the picks, the start left out
    assert d.n_candidates == 1  # l2:2 is deleted already
    assert all(m[0] == "l2:2" and len(m) == 2 for m in d.random[0].masks)
    assert d.random[0].size == 2
    # the start measures as the unedited model does, so the front keeps the unedited one
    assert [(p.source, numbers(p)) for p in d.front] == [("unedited", (1.0, 1.0, 1.0)),
                                                         ("greedy", (0.0, 0.5, 0.0))]
    assert "(takes the benign class with it)" in d.table()
    assert "started from the neurons already deleted (l2:2): every mask holds them" \
        in d.table()
    again = massif.edit.DefenseResult.model_validate_json(d.model_dump_json())
    assert again == d


def test_a_bad_start_is_one_error(planted):
    with pytest.raises(massif.MassifError, match="start .*unknown layer"):
        planted.suggest_defense(1, candidates=["l1:1"], start=["l9:1"])
    with pytest.raises(massif.MassifError, match="start .*whole layer l1"):
        planted.suggest_defense(1, candidates=["l2:1"], start="l1:0,l1:1,l1:2")
    with pytest.raises(massif.MassifError, match="not in the start"):
        planted.suggest_defense(1, candidates=["l1:1"], start=["l1:1"])
    empty = planted.suggest_defense(1, candidates=["l1:1"], start=[], random_draws=1)
    assert empty.start == [] and empty.from_start is None


def test_the_page_route_starts_from_its_deletions(tmp_path):
    app = create_app(Workspace(tmp_path / "ws").root, planted_model(), planted_data(),
                     device="cpu", pictures=False)
    with TestClient(app, base_url=LOCAL) as c:
        status = c.post("/analyses", json={"benign": "benign", "target": "target"}).json()
        key = settled(c, f"/analyses/{status['key']}.json")["key"]
        r = c.post(f"/graphs/{key}/defense", json={"budget": 1, "start": ["l2:2"]})
        assert r.status_code == 202, r.text
        job = settled(c, f"/defenses/{r.json()['id']}.json")
        assert job["state"] == "done", job
        assert job["start"] == ["l2:2"]
        result = massif.edit.DefenseResult.model_validate(job["result"])
        assert result.start == ["l2:2"] and all("l2:2" in s.mask for s in result.greedy)
        assert result.front and result.front[0].source == "unedited"
        for bad, said in ((["l9:1"], "unknown layer"), (["l1:0", "l1:1", "l1:2"], "whole layer"),
                          (["l1:1", ""], "empty")):
            r = c.post(f"/graphs/{key}/defense", json={"budget": 1, "start": bad})
            assert r.status_code == 422 and said in r.json()["detail"], r.text
            assert "start" in r.json()["detail"]


@pytest.mark.parametrize("args, said", [
    (["--mask", "mixed4a:2", "--start", "mixed4a:1"],
     "--start is where the defense search starts: give --defense N"),
    (["--defense", "1", "--start", "mixed9:1"], "--start: unknown layer"),
    (["--defense", "1", "--start", "mixed4a:1,,"], "--start: neuron id 2 of 3 in the mask is "
                                                    "empty"),
])
def test_a_bad_start_on_the_command_line_is_one_line(args, said, tmp_path):
    from tests.helpers.cli import run_massif

    done = run_massif("edit", "--max-images", "20", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"massif: error: {said}"), done.stderr
    assert list(tmp_path.iterdir()) == []
