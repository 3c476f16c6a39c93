"""Defenses checked by stronger attacks that know the mask (``massif.edit.checks``): exact
numbers on hand-set models, the gradient-masking warning where a single step is blinded by the
mask and restarts are not, and the same through ``massif edit --check`` and the edit route."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import massif
from massif.edit import Editor
from massif.server import create_app
from tests.helpers.cli import run_massif
from tests.helpers.tiny import CLASSES, planted_data, planted_model
from tests.helpers.waiting import settled

STRENGTHS = [0.0, 1.75, 3.5]
LOCAL = "http://127.0.0.1"


class DeadZone(nn.Module):
    """2 × 1 × 1 images ``(x0, x1)``; ``l1`` (1×1 conv + ReLU): ``l1:0 = x0`` (benign feature),
    ``l1:1 = x1`` (target feature), ``l1:2 = 10·relu(x1 − 0.5)`` (a target feature dead at the
    benign images' ``x1 = 0.2``). Logits: ``z_b = l1:0 + 0.1``, ``z_t = l1:1 + l1:2``, ``z_o = 0``.

    Unedited, the attack toward the target goes through ``l1:1``. With ``l1:1`` deleted the
    target's gradient at the clean image is 0, so FGM only lowers ``x0`` and stops at
    ``(0, 0.2)``, still benign (0.1 against 0): the deletion "stops" FGM. PGD from a random
    start that lands at ``x1 > 0.5`` climbs ``l1:2`` to ``z_t = 5``: the defense is gradient
    masking, and the check must say so."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
        self.head = nn.Linear(3, 3)
        with torch.no_grad():
            self.l1[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 10.0]])
                                    .view(3, 2, 1, 1))
            self.l1[0].bias.copy_(torch.tensor([0.0, 0.0, -5.0]))
            self.head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0], [0, 0, 0]]))
            self.head.bias.copy_(torch.tensor([0.1, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l1(x).flatten(1))


def dead_zone_editor() -> Editor:
    model = massif.load_model(DeadZone(), layers=["l1"], image_size=1, channels=2,
                              class_names=list(CLASSES))
    return Editor(model, planted_data(), benign="benign", target="target",
                  strengths=STRENGTHS, device="cpu")


def test_a_deletion_that_blinds_the_single_step_is_flagged_by_restarts():
    editor = dead_zone_editor()
    result = editor.evaluate(["l1:1"], checks=["pgd-restarts"])
    assert result.adaptive_asr.before[-1] == 1.0 and result.adaptive_asr.after[-1] == 0.0
    (check,) = result.checks
    assert check.name == "pgd-restarts" and check.epsilon == 3.5
    assert check.asr.before == 1.0 and check.robust_accuracy.before == 0.0
    assert check.asr.after >= 0.5  # restarts find the live zone
    assert check.robust_accuracy.after == pytest.approx(1 - check.asr.after)
    assert check.baseline_gain == 1.0 and check.gain <= 0.5 and check.masking
    (warning,) = result.warnings
    assert "gradient masking" in warning and "pgd-restarts" in warning
    table = result.table()
    assert "stronger attacks at ε = 3.5" in table and "warning: gradient masking" in table
    assert json.loads(result.model_dump_json())["warnings"] == result.warnings


def test_a_real_defense_holds_under_every_check_and_is_not_flagged():
    """Deleting the planted model's target feature stops the attack for any attack: with
    ``l1:1`` gone ``z_t = 0.4`` and ``z_b = x0 + 0.5 ≥ 0.5`` (tiny.py)."""
    editor = Editor(planted_model(), planted_data(), benign="benign", target="target",
                    strengths=STRENGTHS, device="cpu")
    result = editor.evaluate(["l1:1"], checks="pgd-restarts,apgd-ce")
    assert [c.name for c in result.checks] == ["pgd-restarts", "apgd-ce"]
    for check in result.checks:
        assert check.asr.after == 0.0 and check.robust_accuracy.after == 1.0
        assert check.gain == check.asr.before and not check.masking
        assert check.robust_accuracy.before == pytest.approx(1 - check.asr.before)
    # unedited, PGD's restarts all reach the target; APGD-CE's one random start may land on
    # (0, 0), where both ReLUs are dead and its gradient is 0
    assert result.checks[0].asr.before == 1.0 and result.checks[1].asr.before > 0.5
    assert result.warnings == []
    plain = editor.evaluate(["l1:1"])
    assert plain.checks is None and plain.warnings == []


def test_bad_checks_are_one_line_before_any_work():
    editor = dead_zone_editor()
    for checks, words in (("nope", "unknown check 'nope'; choose from pgd-restarts"),
                          ("apgd-t,", "an empty check name"), (3, "a list of names")):
        with pytest.raises(massif.MassifError, match=words) as err:
            editor.evaluate(["l1:1"], checks=checks)
        assert "\n" not in str(err.value)
    with pytest.raises(massif.MassifError, match="at least 4 classes"):  # 3 classes here
        editor.evaluate(["l1:1"], checks=["apgd-t"])
    cw = Editor(planted_model(), planted_data(), benign="benign", target="target",
                attack=massif.make_attack("cw-l2", steps=3), strengths=[0.0, 1.0], device="cpu")
    with pytest.raises(massif.MassifError, match="cw-l2 analysis's strengths are"):
        cw.evaluate(["l1:1"], checks=["pgd-restarts"])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server on the planted model with one PGD-L2 analysis: its app, client and key."""
    app = create_app(tmp_path_factory.mktemp("ws"), planted_model(), planted_data(),
                     device="cpu", pictures=False)
    with TestClient(app, base_url=LOCAL) as client:
        r = client.post("/analyses", json={"benign": "benign", "target": "target",
                                           "attack": "pgd-l2"})
        yield app, client, settled(client, f"/analyses/{r.json()['key']}.json", 120)["key"]


def test_the_edit_route_takes_checks_and_refuses_unknown_ones(served):
    _, client, key = served
    r = client.post(f"/graphs/{key}/edit", json={"mask": ["l1:1"], "checks": ["apgd-ce"]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [c["name"] for c in answer["checks"]] == ["apgd-ce"]
    assert answer["checks"][0]["asr"]["after"] == 0.0 and answer["warnings"] == []
    assert client.post(f"/graphs/{key}/edit", json={"mask": ["l1:1"]}).json()["checks"] \
        is None
    for body, words in (({"checks": ["nope"]}, "unknown check"),
                        ({"checks": ["apgd-ce"], "preview": True}, "without preview"),
                        ({"checks": "apgd-ce"}, "list")):
        r = client.post(f"/graphs/{key}/edit", json={"mask": ["l1:1"], **body})
        assert r.status_code == 422 and words in r.text, (body, r.text)


def test_checks_run_as_a_job_that_answers_what_the_edit_route_answers(served):
    # The page runs checks as a long job (progress, cancel; the editor stays free for other
    # deletions): its result is the edit route's answer for the same mask and checks.
    app, client, key = served
    body = {"mask": ["l1:1"], "checks": ["pgd-restarts", "apgd-ce"]}
    r = client.post(f"/graphs/{key}/checks", json=body)
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running"), r.text
    job = settled(client, f"/checks/{r.json()['id']}.json", 120)
    assert job["state"] == "done" and job["progress"] == 1.0, job
    direct = client.post(f"/graphs/{key}/edit", json=body).json()
    assert job["result"]["checks"] == direct["checks"]
    assert [c["name"] for c in direct["checks"]] == body["checks"]
    assert job["result"]["adaptive_asr"] == direct["adaptive_asr"]
    ended = client.post(f"/checks/{job['id']}/cancel", json={})
    assert ended.status_code == 409 and "nothing to cancel" in ended.json()["detail"]
    assert client.get("/checks/999999.json").status_code == 404
    assert client.post("/checks/0/cancel", json={}).status_code == 404
    # refused before any job: a bad mask, an unknown or empty list of checks, APGD-T on 3
    # classes, an unknown field
    for bad, words in (({"mask": ["l9:0"], "checks": ["apgd-ce"]}, "l9"),
                       ({"mask": ["l1:1"], "checks": ["nope"]}, "unknown check"),
                       ({"mask": ["l1:1"], "checks": []}, "checks"),
                       ({"mask": ["l1:1"], "checks": ["apgd-t"]}, "at least 4 classes"),
                       ({"mask": ["l1:1"], "checks": ["apgd-ce"], "preview": True},
                        "preview")):
        r = client.post(f"/graphs/{key}/checks", json=bad)
        assert r.status_code == 422 and words in r.text, (bad, r.text)
    assert len(app.state.defenses.jobs.jobs) == 1  # the one that ran


def test_checks_report_progress_and_stop_when_cancelled():
    from massif.edit.session import Cancelled

    editor = dead_zone_editor()
    seen = []
    editor.evaluate(["l1:1"], checks=["pgd-restarts", "apgd-ce"],
                    progress=lambda stage, done, total: seen.append((stage, done, total)))
    total = seen[-1][2]
    assert total == 4 and seen[-1] == ("checks", 4, 4)  # 2 checks × before/after × 1 batch
    assert [s[1] for s in seen] == [0, 1, 2, 3, 4]
    assert [s[0] for s in seen[:4]] == ["pgd-restarts before", "pgd-restarts after",
                                        "apgd-ce before", "apgd-ce after"]
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # during the second check

    with pytest.raises(Cancelled):
        editor.evaluate(["l1:1"], checks=["pgd-restarts", "apgd-ce"], cancelled=cancelled)
    assert len(asked) == 3


def test_massif_edit_check_on_the_bundled_model(tmp_path):
    proc = run_massif("edit", "--mask", "mixed4a:12", "--check", "pgd-restarts",
                      "--max-images", "16", "--device", "cpu", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    (check,) = answer["checks"]
    assert check["name"] == "pgd-restarts" and check["epsilon"] == 3.5
    assert 0 <= check["asr"]["after"] <= 1 and isinstance(answer["warnings"], list)
    table = run_massif("edit", "--mask", "mixed4a:12", "--check", "apgd-t", "--max-images", "8",
                       "--device", "cpu", timeout=600)
    assert table.returncode == 0, table.stderr
    assert "stronger attacks at ε = 3.5" in table.stdout and "apgd-t" in table.stdout


@pytest.mark.parametrize("args, words", [
    (["--mask", "mixed4a:12", "--check", "nope"], "--check: unknown check 'nope'"),
    (["--mask", "mixed4a:12", "--check", ""], "--check: an empty check name"),
    (["--defense", "2", "--check", "apgd-t"], "--check measures a mask: give --mask too"),
])
def test_massif_edit_bad_checks_are_one_error_line(args, words):
    proc = run_massif("edit", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("massif: error:") and words in lines[0]
