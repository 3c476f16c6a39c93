"""One registry of attacks (``massif.attacks.ATTACKS``): every place that lists or names attacks
reads it. A place that kept its own list would miss the attack a test registers here, or show a
label the registry does not hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient

from massif.attacks import (
    ATTACKS,
    AttackSpec,
    attack_from_record,
    attack_label,
    attack_names,
    find,
    make_attack,
    record_names,
)
from massif.cli import app
from massif.errors import MassifError
from massif.schemas import AttackInfo
from massif.server import create_app
from massif.server.answers import PairChoice
from tests.helpers.tiny import planted_data, planted_model

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "massif"
LOCAL = "http://127.0.0.1"


def enum(model, field: str) -> list[str]:
    return model.model_json_schema()["properties"][field]["enum"]


def attack_help(command: str) -> str:
    cmd = typer.main.get_command(app).commands[command]
    (param,) = [p for p in cmd.params if "--attack" in p.opts]
    return param.help


def test_every_place_shows_exactly_the_registrys_attacks(tmp_path):
    labels = attack_names()
    assert sorted(enum(AttackInfo, "name")) == sorted(record_names())
    assert enum(PairChoice, "attack") == labels
    for command in ("analyze", "edit"):
        named = re.findall(r"([a-z0-9-]+) \((?:L2|Linf)\)", attack_help(command))
        assert named == labels, command
    server = create_app(tmp_path, planted_model(), planted_data(), device="cpu", pictures=False)
    with TestClient(server, base_url=LOCAL) as client:
        info = client.get("/index.json").json()
    assert info["attacks"] == labels
    assert info["default_max_strength"] == {k: s.default_max_strength for k, s in ATTACKS.items()}
    assert [c["label"] for c in info["attack_choices"]] == labels
    assert all(c["description"] and c["strength"] for c in info["attack_choices"])


def test_no_module_or_page_file_spells_an_attack_list_or_label_rule_of_its_own():
    """Outside ``massif/attacks``, no code names an attack label as a string (``"pgd-l2"``) or
    builds one from a norm (``f"pgd-{norm}"``): the page fills its select from ``/index.json``
    and maps a graph's record to a label with ``info.attack_choices``."""
    others = [label for label in attack_names() if label != "fgm"]  # fgm: the default value
    quoted = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, others)))
    rule = re.compile(r"pgd-\$?\{")
    found = []
    for path in sorted(SRC.rglob("*")):
        if path.suffix not in (".py", ".js", ".html") or "attacks" in path.parts \
                or "vendor" in path.parts:
            continue
        text = path.read_text()
        for pattern in (quoted, rule):
            found += [f"{path.relative_to(SRC)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not found, found


def test_a_new_registry_entry_reaches_the_cli_the_contract_the_server_and_the_page(tmp_path):
    """An attack added to the registry before the rest of MASSIF loads appears in
    ``--attack``'s help, in the graph contract, in the server's choices and ``/index.json``
    (which the page's select shows), and its label comes back from a graph's record."""
    script = f"""
import json
from dataclasses import replace
import massif.attacks as attacks
pgd = attacks.ATTACKS["pgd-l2"]
attacks.ATTACKS["toy-l2"] = replace(pgd, label="toy-l2", name="toy", default_max_strength=7.0,
                                    description="a toy", factory="gradient:Attack")
import typer
from fastapi.testclient import TestClient
from massif.cli import app
from massif.schemas import AttackInfo
from massif.server import create_app
from massif.server.answers import PairChoice
from tests.helpers.tiny import planted_data, planted_model
cmd = typer.main.get_command(app).commands["analyze"]
(param,) = [p for p in cmd.params if "--attack" in p.opts]
record = AttackInfo(name="toy", norm="l2", targeted=True, strengths=[0, 1])
PairChoice(benign=0, target=1, attack="toy-l2")
server = create_app({str(tmp_path)!r}, planted_model(), planted_data(), device="cpu",
                    pictures=False)
with TestClient(server, base_url="http://127.0.0.1") as client:
    info = client.get("/index.json").json()
print(json.dumps({{"help": param.help, "label": attacks.attack_label(record),
                  "attacks": info["attacks"], "strength": info["default_max_strength"],
                  "choices": [c["label"] for c in info["attack_choices"]]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert "toy-l2 (L2)" in seen["help"]
    assert seen["label"] == "toy-l2"
    assert seen["attacks"][-1] == "toy-l2" and seen["choices"][-1] == "toy-l2"
    assert seen["strength"]["toy-l2"] == 7.0


def test_the_page_reads_the_attacks_from_the_server():
    static = SRC / "server" / "static"
    controls = (static / "js" / "controls.js").read_text()
    assert "info.attacks.map" in controls and "info.attack_choices" in controls
    select = re.search(r"<select id=\"attack\"[^>]*>(.*?)</select>",
                       (static / "index.html").read_text(), re.S)
    assert select is not None and select.group(1).strip() == ""  # filled from /index.json


@pytest.mark.parametrize("label", attack_names())
def test_each_label_round_trips_through_an_attack_and_its_record(label):
    atk = make_attack(label, targeted=False)
    assert attack_label(atk) == label
    spec = ATTACKS[label]
    assert (atk.name, atk.norm, atk.targeted) == (spec.name, spec.norm, False)
    record = AttackInfo(name=atk.name, norm=atk.norm, targeted=atk.targeted,
                        strengths=[0.0, spec.default_max_strength], **atk.options())
    assert attack_from_record(record) == atk


def test_names_are_loose_in_case_and_dashes_and_bad_ones_are_one_line():
    assert find("PGD_L2").label == "pgd-l2" and find("pgd").label == "pgd-linf"
    for bad, words in (("deepfool", "choose from fgm, fgsm"), ("", "choose from fgm"),
                       (3, "named by a string")):
        with pytest.raises(MassifError, match=words) as err:
            make_attack(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(MassifError, match="unknown attack option 'steps' for fgm"):
        make_attack("fgm", steps=3)
    assert isinstance(ATTACKS["fgm"], AttackSpec)
