"""A sweep of bad input, CLI and HTTP, against the project's rule for refusing it.

* CLI: exit status 2 and exactly one line on stderr, ``massif: error: <message>``; nothing else
  on stderr, no traceback on either stream. The commands run in-process (``CliRunner``), a few
  through the real console script to show the real process does the same.
* HTTP: a 4xx (never a 500) with a JSON body ``{"detail": "<message>"}``.

For every case the message is short (under ``MAX_MESSAGE`` characters), does not echo a huge
input back (at most ``MAX_ECHO`` characters of any input over 1000 characters), names no
server workspace or cache path, and nothing is written outside the test's temporary folders: the
current directory (a fresh empty one per test) stays empty and no new ``massif-*`` entry
appears in the system's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import massif
from massif.cli import app as cli_app
from massif.schemas import SCHEMA_VERSION
from massif.server import create_app
from tests.helpers.cli import MASSIF
from tests.helpers.synthetic import synthetic_graph
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

PREFIX = "massif: error: "
MAX_MESSAGE = 400  # characters of one error message
MAX_ECHO = 80  # characters of a huge (> 1000 characters) input an error message may quote
HUGE = 1000
CACHE = os.environ["MASSIF_CACHE"]  # set by tests/conftest.py


# ------------------------------------------------------------------ shared checks


def echoed(message: str, text: str) -> bool:
    """Whether more than ``MAX_ECHO`` consecutive characters of ``text`` appear in ``message``."""
    message = message[:4000]
    return any(message[i:i + MAX_ECHO + 1] in text
               for i in range(max(0, len(message) - MAX_ECHO)))


def message_problems(message: str, inputs: list[str], hidden: list[str]) -> list[str]:
    """What is wrong with one error message (empty: nothing)."""
    problems = []
    if not message.strip():
        problems.append("the message is empty")
    if len(message) >= MAX_MESSAGE:
        problems.append(f"the message is {len(message)} characters long")
    for text in inputs:
        if len(text) > HUGE and echoed(message, text):
            problems.append(f"the message echoes more than {MAX_ECHO} characters of a "
                            f"{len(text)}-character input")
    for path in hidden:
        if path and path in message:
            problems.append(f"the message names the path {path}")
    return problems


def massif_temp_entries() -> set[str]:
    """``massif-*`` entries of the system's temporary folder (``massif-test-cache-*`` are made
    by tests/conftest.py of any pytest run, possibly a concurrent one, so they do not count)."""
    return {n for n in os.listdir(tempfile.gettempdir())
            if n.startswith("massif-") and not n.startswith("massif-test-cache-")}


class Sandbox:
    """A fresh empty current directory for one case, and what the system's temporary folder
    held before it; ``problems()`` says what the case wrote outside the test's folders."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.before = massif_temp_entries()

    def problems(self) -> list[str]:
        left = sorted(str(p.relative_to(self.cwd)) for p in self.cwd.rglob("*"))
        new_temp = sorted(massif_temp_entries() - self.before)
        out = []
        if left:
            out.append(f"wrote into the current directory: {left[:5]}")
        if new_temp:
            out.append(f"left {new_temp[:5]} in {tempfile.gettempdir()}")
        return out


@pytest.fixture(autouse=True)
def sandbox(tmp_path_factory, monkeypatch) -> Sandbox:
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    return Sandbox(cwd)


# ------------------------------------------------------------------ CLI

HUGE_NAME = "Q" * 20_000
HUGE_NEURONS = "mixed4a:" + "7" * 20_000
HUGE_STRENGTHS = "x" * 20_000

# Cases that would do real work if the project let the bad value through are kept small, so a
# wrongly accepted input finishes quickly instead of running a full analysis.
ANALYZE = ["analyze", "--no-pictures", "--max-images", "2", "--batch-size", "32", "--steps",
           "2", "--nodes-per-layer", "2", "--device", "cpu", "--out", "{tmp}/out"]
# edit builds its editor before it reads the mask: on a 20-image copy of the classes
# ({tiny_data}) instead of Fashion-MNIST's 1000-image sample, so these cases stay quick.
EDIT = ["edit", "--max-images", "1", "--steps", "2", "--batch-size", "64", "--device", "cpu",
        "--data", "{tiny_data}"]
VISUALIZE = ["visualize", "--steps", "1", "--device", "cpu", "--neurons", "mixed4a:1"]
EXAMPLES = ["examples", "--layers", "mixed4a", "--batch-size", "32", "--device", "cpu",
            "--data", "{tmp}/data"]  # (no such folder: an accepted bad option still stops)

# id, arguments ({file}: an existing plain file, {tmp}: this case's folder; see cli_files),
# a regular expression the message must match (case-insensitive) or None.
CLI_CASES: list[tuple[str, list[str], str | None]] = [
    # --out, --cache, --export, --dest: paths that cannot be used
    ("analyze-out-is-a-file", [*ANALYZE, "--out", "{file}"], r"--out"),
    ("analyze-out-under-a-file", [*ANALYZE, "--out", "{file}/sub"], r"--out"),
    ("analyze-out-in-proc", [*ANALYZE, "--out", "/proc/massif-x"], r"--out"),
    ("analyze-cache-is-a-file", [*ANALYZE, "--pictures", "--cache", "{file}"], r"--cache"),
    ("analyze-cache-under-a-file", [*ANALYZE, "--pictures", "--cache", "{file}/c"], r"--cache"),
    ("edit-export-under-a-file", [*EDIT, "--mask", "mixed4a:1", "--export", "{file}/x.pt"],
     r"--export"),
    ("edit-export-in-sys", [*EDIT, "--mask", "mixed4a:1", "--export", "/sys/massif-x.pt"],
     r"--export /sys/massif-x\.pt: cannot write in /sys"),
    ("edit-export-is-a-folder", [*EDIT, "--mask", "mixed4a:1", "--export", "{tmp}"],
     r"--export"),
    ("visualize-cache-is-a-file", [*VISUALIZE, "--cache", "{file}"], r"--cache"),
    ("examples-cache-is-a-file", [*EXAMPLES, "--cache", "{file}"], r"--cache"),
    ("download-data-dest-is-a-file", ["download-data", "--dest", "{file}"], r"--dest"),
    ("download-data-url-not-a-url", ["download-data", "--dest", "{tmp}/d", "--url", "notaurl"],
     r"--url 'notaurl' is not a URL"),
    ("download-data-url-no-colon", ["download-data", "--dest", "{tmp}/d", "--url", "ftp//bad"],
     r"--url 'ftp//bad' is not a URL"),
    # numbers out of range
    ("analyze-max-images-0", [*ANALYZE, "--max-images", "0"], r"max.images"),
    ("analyze-max-images-minus-1", [*ANALYZE, "--max-images", "-1"], r"max.images"),
    ("analyze-max-strength-nan", [*ANALYZE, "--max-strength", "nan"], r"strength"),
    ("analyze-max-strength-inf", [*ANALYZE, "--max-strength", "inf"], r"strength"),
    ("analyze-max-strength-minus-1", [*ANALYZE, "--max-strength", "-1"], r"strength"),
    ("analyze-max-strength-0", [*ANALYZE, "--max-strength", "0"], r"strength"),
    ("analyze-max-strength-1e-320", [*ANALYZE, "--max-strength", "1e-320"], r"strength"),
    ("analyze-max-strength-1e300", [*ANALYZE, "--max-strength", "1e300"], r"strength"),
    ("analyze-strengths-decreasing", [*ANALYZE, "--strengths", "0,2,1"], r"increasing"),
    ("analyze-strengths-not-numbers", [*ANALYZE, "--strengths", "a,b"], r"strengths"),
    ("analyze-strengths-nan", [*ANALYZE, "--strengths", "0,nan"], r"strength"),
    ("analyze-strengths-empty", [*ANALYZE, "--strengths", ","], r"strength"),
    ("analyze-strengths-huge", [*ANALYZE, "--strengths", HUGE_STRENGTHS], r"strengths"),
    ("analyze-steps-1", [*ANALYZE, "--steps", "1"], r"steps"),
    ("analyze-steps-minus-5", [*ANALYZE, "--steps", "-5"], r"steps"),
    ("analyze-nodes-per-layer-0", [*ANALYZE, "--nodes-per-layer", "0"], r"nodes per layer"),
    ("analyze-edges-per-node-minus-1", [*ANALYZE, "--edges-per-node", "-1"], r"edges"),
    ("analyze-batch-size-0", [*ANALYZE, "--batch-size", "0"], r"batch"),
    ("analyze-image-size-0", [*ANALYZE, "--image-size", "0"], r"image size"),
    # names that do not exist
    ("analyze-device-cuda-7", [*ANALYZE, "--device", "cuda:7"], r"cuda|device"),
    ("analyze-device-tpu", [*ANALYZE, "--device", "tpu"], r"device"),
    ("analyze-importance-magic", [*ANALYZE, "--importance", "magic"], r"importance"),
    ("analyze-attack-deepfool", [*ANALYZE, "--attack", "deepfool"], r"attack"),
    ("analyze-model-missing-file", [*ANALYZE, "--model", "nonexistent.py:build"],
     r"nonexistent\.py"),
    ("analyze-model-torchvision-nonet", [*ANALYZE, "--model", "torchvision:nonet"], r"nonet"),
    ("analyze-model-no-factory", [*ANALYZE, "--model", "nonexistent"], r"model"),
    ("analyze-layers-unknown", [*ANALYZE, "--layers", "nolayer"], r"nolayer"),
    ("analyze-layers-empty", [*ANALYZE, "--layers", ""], r"layers '' has an empty name"),
    ("analyze-layers-commas", [*ANALYZE, "--layers", ",,"], r"layers ',,' has an empty name"),
    ("analyze-layers-an-empty-one", [*ANALYZE, "--layers", "mixed3a,,mixed4a"],
     r"has an empty name"),
    ("analyze-data-missing", [*ANALYZE, "--data", "/nonexistent"], r"/nonexistent"),
    ("analyze-data-a-file", [*ANALYZE, "--data", "{file}"], r"data|folder|dataset"),
    ("analyze-unknown-benign", [*ANALYZE, "--benign", "Sneakr"], r"Sneakr"),
    ("analyze-unknown-target", [*ANALYZE, "--target", "Sandle"], r"Sandle"),
    ("analyze-huge-benign", [*ANALYZE, "--benign", HUGE_NAME], r"unknown class"),
    ("analyze-huge-target", [*ANALYZE, "--target", HUGE_NAME], r"unknown class"),
    ("analyze-target-index-99", [*ANALYZE, "--target", "99"], r"99"),
    ("analyze-benign-index-minus-1", [*ANALYZE, "--benign", "-1"], r"-1|class"),
    ("analyze-benign-superscript-two", [*ANALYZE, "--benign", "²"], r"²|class"),
    ("analyze-benign-5000-digits", [*ANALYZE, "--benign", "9" * 5000], r"class"),
    ("analyze-target-4000-digits", [*ANALYZE, "--target", "9" * 4000], r"class"),
    ("analyze-benign-equals-target", [*ANALYZE, "--benign", "Bag", "--target", "Bag"],
     r"same class"),
    ("analyze-benign-index-equals-target-name", [*ANALYZE, "--benign", "8", "--target", "bag"],
     r"same class"),
    ("analyze-unknown-class-default-out", [a for a in ANALYZE if not a.startswith(("--out",
                                           "{tmp}"))] + ["--benign", "Sneakr"], r"Sneakr"),
    # files that are not what they should be
    ("analyze-weights-missing", [*ANALYZE, "--weights", "{tmp}/missing.pt"], r"missing\.pt"),
    ("analyze-weights-garbage", [*ANALYZE, "--weights", "{garbage_pt}"], r"weights"),
    ("analyze-weights-wrong-shape", [*ANALYZE, "--weights", "{wrong_pt}"], r"weights"),
    ("analyze-weights-a-folder", [*ANALYZE, "--weights", "{tmp}"], r"is a folder"),
    ("analyze-weights-an-edited-model", [*ANALYZE, "--weights", "{edited_pt}"],
     r"edited model written by massif edit --export; --weights would drop its 1 deleted"),
    ("analyze-model-file-exits", [*ANALYZE, "--model", "{exits_py}:build"],
     r"cannot import .*SystemExit: 3"),
    ("analyze-class-index-missing", [*ANALYZE, "--class-index", "{tmp}/missing.json"],
     r"class index"),
    ("analyze-class-index-corrupt", [*ANALYZE, "--class-index", "{corrupt_json}"],
     r"class index"),
    ("analyze-class-index-list", [*ANALYZE, "--class-index", "{list_json}"], r"class index"),
    ("analyze-class-index-superscript-key", [*ANALYZE, "--class-index",
                                             "{superscript_json}"], r"class index"),
    # the command line itself
    ("analyze-max-images-not-a-number", [*ANALYZE, "--max-images", "abc"], r"max-images"),
    ("analyze-unknown-option", [*ANALYZE, "--no-such-option"], r"no-such-option"),
    ("analyze-extra-argument", [*ANALYZE, "surplus"], r"surplus"),
    ("unknown-command", ["frobnicate"], r"frobnicate"),
    # edit
    ("edit-neither-mask-nor-defense", [*EDIT], r"--mask|--defense"),
    ("edit-defense-100000", [*EDIT, "--defense", "100000"], r"--defense"),
    ("edit-defense-0", [*EDIT, "--defense", "0"], r"--defense"),
    ("edit-defense-minus-1", [*EDIT, "--defense", "-1"], r"--defense"),
    ("edit-mode-half", [*EDIT, "--mask", "mixed4a:1", "--mode", "half"], r"--mode"),
    ("edit-mask-plus-sign", [*EDIT, "--mask", "mixed4a:+1"], r"mixed4a:\+1"),
    ("edit-mask-full-width-digit", [*EDIT, "--mask", "mixed4a:１"], r"neuron id"),
    ("edit-mask-channel-out-of-range", [*EDIT, "--mask", "mixed4a:9999"], r"mixed4a"),
    ("edit-mask-unknown-layer", [*EDIT, "--mask", "nolayer:1"], r"nolayer"),
    ("edit-mask-only-commas", [*EDIT, "--mask", ",,"], r"empty"),
    ("edit-mask-an-empty-id", [*EDIT, "--mask", "mixed4a:1,,,"], r"neuron id 2 of 4 .* empty"),
    ("edit-mask-huge", [*EDIT, "--mask", HUGE_NEURONS], r"neuron|channel|mixed4a"),
    ("edit-graph-missing", [*EDIT, "--mask", "mixed4a:1", "--graph", "{tmp}/missing.json"],
     r"graph"),
    ("edit-graph-garbage", [*EDIT, "--mask", "mixed4a:1", "--graph", "{garbage_json}"],
     r"graph"),
    ("edit-graph-a-list", [*EDIT, "--mask", "mixed4a:1", "--graph", "{list_json}"], r"graph"),
    ("edit-graph-wrong-field-types", [*EDIT, "--mask", "mixed4a:1", "--graph",
                                      "{wrong_types_json}"], r"graph"),
    ("edit-graph-and-the-options-it-sets", [*EDIT, "--mask", "mixed4a:1", "--graph",
                                            "{graph_json}", "--benign", "Trouser"],
     r"--graph sets the pair.*drop --benign, --steps, --max-images"),
    ("edit-graph-schema-newer-version", [*EDIT, "--mask", "mixed4a:1", "--graph",
                                     "{newer_version_json}"], r"schema_version"),
    # visualize, examples
    ("visualize-neuron-channel-9999", [*VISUALIZE, "--neurons", "mixed4a:9999"], r"mixed4a"),
    ("visualize-neuron-superscript-digit", [*VISUALIZE, "--neurons", "mixed4a:²"],
     r"neuron id"),
    ("visualize-neuron-unknown-layer", [*VISUALIZE, "--neurons", "nolayer:1"], r"nolayer"),
    ("visualize-neuron-huge", [*VISUALIZE, "--neurons", HUGE_NEURONS],
     r"neuron|channel|mixed4a"),
    ("visualize-steps-0", [*VISUALIZE, "--steps", "0"], r"--steps"),
    ("visualize-device-tpu", [*VISUALIZE, "--device", "tpu"], r"device"),
    ("visualize-weights-garbage", [*VISUALIZE, "--weights", "{garbage_pt}"], r"weights"),
    ("examples-top-0", [*EXAMPLES, "--top", "0"], r"--top"),
    ("examples-batch-size-0", [*EXAMPLES, "--batch-size", "0"], r"batch"),
    ("examples-data-missing", [*EXAMPLES, "--data", "/nonexistent"], r"/nonexistent"),
    ("examples-layers-unknown", [*EXAMPLES, "--layers", "nolayer"], r"nolayer"),
    # report
    ("report-run-missing", ["report", "{tmp}/nothing", "-o", "{tmp}/r.html"], r"no analysis"),
    ("report-run-garbage", ["report", "{garbage_json}", "-o", "{tmp}/r.html"], r"json|graph"),
    ("report-run-wrong-types", ["report", "{wrong_types_json}", "-o", "{tmp}/r.html"],
     r"graph|field|schema|json"),
    ("report-run-newer-version", ["report", "{newer_version_json}", "-o", "{tmp}/r.html"],
     r"schema"),
    ("report-out-is-a-folder", ["report", "{newer_version_json}", "-o", "{tmp}"], r"--out"),
    ("report-out-under-a-file", ["report", "{newer_version_json}", "-o", "{file}/r.html"],
     r"--out"),
    ("report-cache-is-a-file", ["report", "{graph_json}", "-o", "{tmp}/r.html", "--cache",
                                "{file}"], r"--cache .* is a file, not a folder"),
    ("report-cache-under-a-file", ["report", "{graph_json}", "-o", "{tmp}/r.html", "--cache",
                                   "{file}/c"], r"--cache .*: .* is a file, not a folder"),
    # the file asked for, not the temporary one that could not be made beside it (as root,
    # /sys accepts the check that the folder is writable, then refuses the file)
    ("report-out-in-sys", ["report", "{graph_json}", "-o", "/sys/massif-x.html"],
     r"/sys/massif-x\.html\b"),
    # compare
    ("compare-a-missing", ["compare", "{tmp}/nothing", "{tmp}/nothing"], r"no analysis"),
    ("compare-b-garbage", ["compare", "{graph_json}", "{garbage_json}"], r"json|graph"),
    ("compare-b-newer-version", ["compare", "{graph_json}", "{newer_version_json}"],
     r"schema"),
    ("compare-b-short-asr", ["compare", "{graph_json}", "{short_asr_json}"],
     r"attack_success_rate has \d+ values for \d+ strengths"),
    ("compare-b-crossed-misshapen", ["compare", "{graph_json}", "{bad_crossed_json}"],
     r"divergence.crossed needs one row per strength"),
    ("compare-strength-above-max", ["compare", "{graph_json}@99", "{graph_json}"],
     r"outside"),
    ("compare-strength-negative", ["compare", "{graph_json}@-1", "{graph_json}"], r"outside"),
    ("compare-strength-nan", ["compare", "{graph_json}@nan", "{graph_json}"], r"outside"),
    ("compare-strength-not-a-number", ["compare", "{graph_json}@abc", "{graph_json}"],
     r"strength"),
    ("compare-most-0", ["compare", "{graph_json}", "{graph_json}", "--most", "0"], r"most"),
]


# graph.json files that break the contract (docs/graph-json.md) in one place each, and the
# field the message must name: refused by Graph.load, so by compare, report and the server.
def _nan_asr(g: dict) -> None:
    g["metrics"]["attack_success_rate"][1] = float("nan")  # json.dumps writes NaN


def _asr_7_5(g: dict) -> None:
    g["metrics"]["attack_success_rate"][1] = 7.5


def _strengths_not_increasing(g: dict) -> None:
    g["attack"]["strengths"][2] = g["attack"]["strengths"][1]


def _edge_from_unknown_node(g: dict) -> None:
    g["edges"][0]["source"] = "layer0:999"


def _node_twice(g: dict) -> None:
    g["nodes"].append(dict(g["nodes"][0]))


def _divergence_layer_unknown(g: dict) -> None:
    g["metrics"]["divergence_layer"] = "mixed9z"


def _channel_minus_1(g: dict) -> None:
    g["nodes"][0]["channel"] = -1


def _n_images_minus_5(g: dict) -> None:
    g["benign"]["n_images"] = -5


BROKEN_CONTRACT = {  # name: (change, the field the message names)
    "asr-nan": (_nan_asr, r"metrics\.attack_success_rate\.1: .*finite"),
    "asr-7.5": (_asr_7_5, r"metrics\.attack_success_rate\.1: .*less than or equal to 1"),
    "strengths-not-increasing": (_strengths_not_increasing, r"attack\.strengths: .*increase"),
    "edge-from-unknown-node": (_edge_from_unknown_node,
                               r"edges\.0\.source: 'layer0:999' is not a node"),
    "node-twice": (_node_twice, r"nodes\.\d+\.id: '[a-z0-9]+:\d+' is listed twice"),
    "divergence-layer-unknown": (_divergence_layer_unknown,
                                 r"metrics\.divergence_layer: 'mixed9z' is not one of layers"),
    "channel-minus-1": (_channel_minus_1, r"nodes\.0\.channel: .*greater than or equal to 0"),
    "n-images-minus-5": (_n_images_minus_5,
                         r"benign\.n_images: .*greater than or equal to 0"),
}


def broken_graph(name: str) -> dict:
    """A small valid graph's JSON with the change ``BROKEN_CONTRACT[name]`` made."""
    good = json.loads(synthetic_graph(layers=2, per_layer=3).to_json(indent=None))
    BROKEN_CONTRACT[name][0](good)
    return good


def contract_file(name: str) -> str:
    return "contract_" + re.sub(r"[^a-z0-9]+", "_", name)


CLI_CASES += [
    *[(f"compare-b-contract-{name}", ["compare", "{graph_json}", f"{{{contract_file(name)}}}"],
       pattern) for name, (_, pattern) in BROKEN_CONTRACT.items()],
    *[(f"report-contract-{name}", ["report", f"{{{contract_file(name)}}}", "-o",
                                   "{tmp}/r.html"], pattern)
      for name, (_, pattern) in BROKEN_CONTRACT.items()],
]

# Run through the real console script (with a time limit: a serve that does not fail would
# serve forever). --port 0: were it to start, it would not take a port someone uses.
REAL_CASES: list[tuple[str, list[str], str | None]] = [
    ("serve-workspace-is-a-file", ["serve", "{file}", "--port", "0", "--device", "cpu"],
     r"workspace"),
    ("serve-max-images-minus-1", ["serve", "{tmp}/ws", "--port", "0", "--device", "cpu",
                                  "--max-images", "-1"], r"max images"),
    ("serve-host-not-a-host-name", ["serve", "{tmp}/ws", "--host", "not..a..host", "--port",
                                    "0", "--device", "cpu"], r"not a valid host name"),
    ("serve-port-70000", ["serve", "{tmp}/ws", "--port", "70000", "--device", "cpu"],
     r"--port"),
    ("demo-port-70000", ["demo", "--workspace", "{tmp}/ws", "--port", "70000"], r"--port"),
    ("analyze-max-images-0-real-process", [*ANALYZE, "--max-images", "0"], r"max.images"),
    ("analyze-benign-equals-target-real-process", [*ANALYZE, "--benign", "Bag", "--target",
                                                   "Bag"], r"same class"),
]

FAST_CASES = {  # must be refused before any analysis work (no model loaded)
    "edit-export-in-sys",  # (root may create files where permissions say no)
    "analyze-cache-is-a-file", "analyze-cache-under-a-file", "analyze-out-is-a-file",
    "analyze-out-under-a-file", "analyze-out-in-proc", "edit-export-under-a-file",
    "visualize-cache-is-a-file", "examples-cache-is-a-file", "edit-mode-half",
    "edit-defense-0", "edit-defense-100000", "edit-neither-mask-nor-defense",
    "report-run-missing", "report-run-garbage", "report-run-wrong-types",
    "report-run-newer-version",
    "report-out-is-a-folder", "report-out-under-a-file", "report-cache-is-a-file",
    "report-cache-under-a-file", "download-data-url-not-a-url", "download-data-url-no-colon",
    *[f"report-contract-{name}" for name in BROKEN_CONTRACT],
}
FAST_SECONDS = 5.0
CASE_SECONDS = 60.0


def graph_with_wrong_types() -> dict:
    return {"schema_version": 2, "layers": {"a": 1}, "nodes": "many", "edges": 5,
            "benign": [], "target": None, "attack": "fgm", "metrics": 3, "model": 1.5}


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli-files")
    (root / "plain.txt").write_text("just a file\n")
    (root / "garbage.pt").write_bytes(b"\x00\xffthis is not a checkpoint" * 40)
    torch.save({"w": torch.zeros(3)}, root / "wrong.pt")
    (root / "corrupt.json").write_text('{"0": ["n01440764", "tench"')
    (root / "list.json").write_text('[["n01440764", "tench"]]')
    (root / "superscript.json").write_text(json.dumps({"²": ["n01440764", "tench"]}))
    (root / "garbage.json").write_text("this is { not JSON")
    from PIL import Image

    for i, name in enumerate(["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                              "Shirt", "Sneaker", "Bag", "Ankle boot"]):
        (root / "tiny-data" / name).mkdir(parents=True)
        for j in range(2):
            Image.new("L", (28, 28), color=20 * i + 5 * j).save(root / "tiny-data" / name
                                                                / f"{j}.png")
    (root / "wrong-types.json").write_text(json.dumps(graph_with_wrong_types()))
    torch.save({"format": "massif-edited-model", "mask": ["mixed4a:1"],  # edit --export's
                "state_dict": massif.load_model("bundled").module.state_dict()},
               root / "edited.pt")
    (root / "exits.py").write_text("import sys\nsys.exit(3)\n")
    good = json.loads(synthetic_graph(layers=2, per_layer=3).to_json(indent=None))
    newer = {**good, "schema_version": SCHEMA_VERSION + 1}
    (root / "newer-version.json").write_text(json.dumps(newer))
    (root / "graph.json").write_text(json.dumps(good))
    short = json.loads(json.dumps(good))
    short["metrics"]["attack_success_rate"].pop()
    (root / "short-asr.json").write_text(json.dumps(short))
    misshapen = json.loads(json.dumps(good))
    misshapen["metrics"]["divergence"]["crossed"][0].append(0.5)
    (root / "bad-crossed.json").write_text(json.dumps(misshapen))
    contract = {}
    for name in BROKEN_CONTRACT:
        contract[contract_file(name)] = str(root / f"{contract_file(name)}.json")
        Path(contract[contract_file(name)]).write_text(json.dumps(broken_graph(name)))
    return {**contract,"file": str(root / "plain.txt"), "garbage_pt": str(root / "garbage.pt"),
            "wrong_pt": str(root / "wrong.pt"), "corrupt_json": str(root / "corrupt.json"),
            "list_json": str(root / "list.json"), "garbage_json": str(root / "garbage.json"),
            "wrong_types_json": str(root / "wrong-types.json"),
            "newer_version_json": str(root / "newer-version.json"),
            "graph_json": str(root / "graph.json"),
            "short_asr_json": str(root / "short-asr.json"),
            "bad_crossed_json": str(root / "bad-crossed.json"),
            "superscript_json": str(root / "superscript.json"),
            "tiny_data": str(root / "tiny-data"), "edited_pt": str(root / "edited.pt"),
            "exits_py": str(root / "exits.py")}


def fill(args: list[str], files: dict[str, str], tmp: Path) -> list[str]:
    out = []
    for a in args:
        if len(a) < HUGE:
            a = a.replace("{tmp}", str(tmp))
            for name, path in files.items():
                a = a.replace("{" + name + "}", path)
        out.append(a)
    return out


def cli_problems(code: int | None, stdout: str, stderr: str, args: list[str],
                 pattern: str | None, exception: BaseException | None = None) -> list[str]:
    """Everything that breaks the CLI's rule for one bad input (empty: nothing)."""
    problems = []
    if exception is not None and not isinstance(exception, SystemExit):
        problems.append(f"raised {type(exception).__name__}: {str(exception)[:300]}")
    if "Traceback" in stdout or "Traceback" in stderr:
        problems.append("a traceback was printed")
    if code != 2:
        problems.append(f"exit status {code}, not 2")
    lines = stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith(PREFIX)]
    if len(lines) != 1 or len(errors) != 1:
        problems.append(f"stderr has {len(lines)} line(s), {len(errors)} of them "
                        f"'{PREFIX}...', not exactly one")
    if errors:
        message = errors[0][len(PREFIX):]
        problems += message_problems(message, args, [CACHE])
        if pattern and not re.search(pattern, message, re.IGNORECASE):
            problems.append(f"the message does not say /{pattern}/")
    return problems


def report(problems: list[str], stdout: str, stderr: str) -> str:
    """The problems, then both streams (long lines and long runs of one character cut)."""

    def shown(stream: str) -> str:
        lines = []
        for line in stream.splitlines()[-20:]:
            line = re.sub(r"(.)\1{40,}", lambda m: m.group(1) * 20 + f"…(×{len(m.group(0))})",
                          line)
            lines.append(line if len(line) <= 400 else f"{line[:400]}…({len(line)} chars)")
        return "\n".join(lines)

    return "; ".join(problems) + f"\n--- stderr:\n{shown(stderr)}\n--- stdout:\n{shown(stdout)}"


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> CliRunner:
    # Click 8.2+ has no ``mix_stderr``: ``result.stdout`` and ``result.stderr`` are always kept
    # apart (``result.output`` is both, interleaved).
    runner = CliRunner()
    # Import the heavy modules once, so the time limits below measure the command alone.
    out = tmp_path_factory.mktemp("warm-up")
    runner.invoke(cli_app, ["analyze", "--max-images", "0", "--out", str(out / "out")])
    import massif.analysis  # noqa: F401
    import massif.edit  # noqa: F401
    import massif.pictures  # noqa: F401

    return runner


@pytest.mark.parametrize("args, pattern",
                         [pytest.param(a, p, id=i) for i, a, p in CLI_CASES])
def test_cli_refuses_bad_input_with_one_line(runner, cli_files, tmp_path, sandbox, args,
                                             pattern):
    args = fill(args, cli_files, tmp_path)
    result = runner.invoke(cli_app, args)
    stdout, stderr = result.stdout, result.stderr
    problems = cli_problems(result.exit_code, stdout, stderr, args, pattern, result.exception)
    problems += sandbox.problems()
    assert not problems, report(problems, stdout, stderr)


@pytest.mark.timing
@pytest.mark.parametrize("args, pattern",
                         [pytest.param(a, p, id=i) for i, a, p in CLI_CASES])
def test_cli_refuses_bad_input_in_time(runner, cli_files, tmp_path, request, args, pattern):
    """Timing (``pytest -m timing``): the cases of ``FAST_CASES`` are refused before any
    analysis work, within ``FAST_SECONDS``; the others within ``CASE_SECONDS``."""
    args = fill(args, cli_files, tmp_path)
    started = time.perf_counter()
    result = runner.invoke(cli_app, args)
    seconds = time.perf_counter() - started
    limit = FAST_SECONDS if request.node.callspec.id in FAST_CASES else CASE_SECONDS
    print(f"\nrefused in {seconds:.2f} s (at most {limit:g} s)")
    assert result.exit_code == 2, result.stderr
    assert seconds <= limit, f"took {seconds:.1f} s (at most {limit:g} s: refuse before any work)"


@pytest.mark.parametrize("args, pattern",
                         [pytest.param(a, p, id=i) for i, a, p in REAL_CASES])
def test_real_console_script_refuses_bad_input_with_one_line(cli_files, tmp_path, sandbox,
                                                             args, pattern):
    args = fill(args, cli_files, tmp_path)
    timeout = 60
    try:
        proc = subprocess.run([MASSIF, *args], cwd=sandbox.cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(report([f"still running after {timeout} s (it should have refused the "
                            "input at once, not started)"], out, err))
    problems = cli_problems(proc.returncode, proc.stdout, proc.stderr, args, pattern)
    problems += sandbox.problems()
    assert not problems, report(problems, proc.stdout, proc.stderr)


@pytest.mark.parametrize("name", list(BROKEN_CONTRACT))
def test_graph_load_refuses_a_broken_contract_naming_the_field(tmp_path, name):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(broken_graph(name)))
    with pytest.raises(massif.MassifError) as caught:
        massif.Graph.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a valid graph: "), message
    assert re.search(BROKEN_CONTRACT[name][1], message) and "\n" not in message, message
    assert not message_problems(message, [], [])


# ------------------------------------------------------------------ HTTP

LONG_KEY = "k" * 5000
DAMAGED = {
    "damaged-not-json": "{this is not JSON",
    "damaged-a-list": json.dumps([1, 2, 3]),
    "damaged-wrong-types": json.dumps(graph_with_wrong_types()),
    "damaged-schema-99": None,  # a valid graph but schema_version 99 (made in the fixture)
    "damaged-deep": "[" * 100_000 + "]" * 100_000,  # valid JSON, too deep for the parser
}


def contract_key(name: str) -> str:
    return "contract-" + re.sub(r"[^a-z0-9]+", "-", name)


@dataclass
class Server:
    client: TestClient
    root: Path
    key: str  # a finished analysis of the planted model
    hidden: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    for key, text in DAMAGED.items():
        if text is None:
            good = json.loads(synthetic_graph(layers=2, per_layer=3).to_json(indent=None))
            text = json.dumps({**good, "schema_version": 99})
        (root / "graphs" / key).mkdir(parents=True)
        (root / "graphs" / key / "graph.json").write_text(text)
    from massif.store import Workspace

    for name in BROKEN_CONTRACT:
        (root / "graphs" / contract_key(name)).mkdir(parents=True)
        (root / "graphs" / contract_key(name) / "graph.json").write_text(
            json.dumps(broken_graph(name)))
    Workspace(root).save(synthetic_graph(layers=2, per_layer=3), "synthetic-small")
    app = create_app(root, planted_model(), planted_data(), device="cpu", pictures=False)
    with TestClient(app, base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as client:
        status = client.post("/analyses", json={"benign": "benign", "target": "target"}).json()
        status = settled(client, f"/analyses/{status['key']}.json")
        assert status["state"] == "done", status
        hidden = sorted({str(root), str(root.resolve()), CACHE, str(Path(CACHE).resolve())},
                        key=len, reverse=True)
        yield Server(client, root, status["key"], hidden)


def strings_in(value: Any) -> list[str]:
    """Every string in a JSON-like value (and the value itself, if a string or bytes)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings_in(v)]
    return []


def http_problems(r: Any, inputs: list[str], hidden: list[str],
                  statuses: set[int] | None = None, pattern: str | None = None) -> list[str]:
    problems = []
    if r.status_code >= 500:
        problems.append(f"answered {r.status_code} (a server error)")
    elif not 400 <= r.status_code < 500:
        problems.append(f"answered {r.status_code}, not a 4xx")
    elif statuses and r.status_code not in statuses:
        problems.append(f"answered {r.status_code}, not {sorted(statuses)}")
    ctype = r.headers.get("content-type", "")
    try:
        body = r.json()
    except ValueError:
        body = None
    if not ctype.startswith("application/json") or not isinstance(body, dict) \
            or set(body) != {"detail"} or not isinstance(body["detail"], str):
        problems.append(f"the body is not {{\"detail\": \"...\"}} ({ctype}: "
                        f"{r.content[:300]!r})")
        message = r.text
    else:
        message = body["detail"]
    if "Traceback" in r.text:
        problems.append("the body holds a traceback")
    problems += message_problems(message, inputs, hidden)
    if pattern and not re.search(pattern, message, re.IGNORECASE):
        problems.append(f"the message does not say /{pattern}/")
    return problems


@dataclass
class H:
    """One bad HTTP request. ``path`` may hold ``{key}`` (the planted analysis) and ``{other}``
    (a saved analysis of another model). Big payloads are built lazily (``make``)."""

    method: str
    path: str
    json: Any = None
    content: Any = None
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    make: Any = None  # () -> dict of the above, for payloads too big to build at collection
    statuses: set[int] | None = None
    pattern: str | None = None
    seconds: float = 20.0


def case(id_: str, *args: Any, **kw: Any) -> Any:
    return pytest.param(H(*args, **kw), id=id_)


KEY_ROUTES = [  # every route with {key}: method, path, body
    ("GET", "/graphs/{k}.json", None),
    ("GET", "/graphs/{k}", None),
    ("GET", "/graphs/{k}/pictures.json", None),
    ("GET", "/graphs/{k}/nodes/x:1.json", None),
    ("GET", "/graphs/{k}/nodes/x:1/picture.png", None),
    ("GET", "/analyses/{k}.json", None),
    ("POST", "/analyses/{k}/cancel", {}),
    ("POST", "/graphs/{k}/edit", {"mask": "l1:1"}),
    ("POST", "/graphs/{k}/editor", {}),
    ("POST", "/graphs/{k}/defense", {"budget": 2}),
    ("POST", "/graphs/{k}/edited-model.pt", {"mask": "l1:1"}),
]


def route_id(method: str, path: str) -> str:
    return method.lower() + "-" + re.sub(r"[^a-z0-9]+", "-", path.replace("{k}", "KEY")
                                         .lower()).strip("-")


LONG_KEY_CASES = [case(f"long-key-{route_id(m, p)}", m, p.replace("{k}", LONG_KEY), json=b,
                       statuses={404, 414, 422})
                  for m, p, b in KEY_ROUTES]

ODD_KEYS = {"dots": "a.b.c", "dot-dot": "%2E%2E", "slash": "a%2Fb", "upper-case": "ABC-123",
            "unicode": "ключ-é", "space": "a%20b", "backslash": "a%5Cb", "nul": "a%00b"}
ODD_KEY_CASES = [case(f"key-{name}-{route_id(m, p)}", m, p.replace("{k}", key), json=b,
                      statuses={404, 422})
                 for name, key in ODD_KEYS.items()
                 for m, p, b in (KEY_ROUTES[0], KEY_ROUTES[7])]

DAMAGED_ROUTES = [KEY_ROUTES[i] for i in (0, 1, 2, 3, 4, 7, 8, 9, 10)]
DAMAGED_CASES = [case(f"damaged-{key.removeprefix('damaged-')}-{route_id(m, p)}", m,
                      p.replace("{k}", key), json=b, pattern=re.escape(key),
                      statuses={409})
                 for key in DAMAGED for m, p, b in DAMAGED_ROUTES]

OK_PAIR = {"benign": "benign", "target": "target"}
QUERY = {"benign": "benign", "target": "target"}

ANALYSIS_CASES = [
    # GET /analyses.json
    *[case(f"lookup-max-strength-{name}", "GET", "/analyses.json",
           params={**QUERY, "max_strength": value}, statuses={422}, pattern="max_strength")
      for name, value in [("nan", "nan"), ("inf", "inf"), ("minus-1", "-1"), ("0", "0"),
                          ("1e-320", "1e-320"), ("abc", "abc"), ("minus-inf", "-inf"),
                          ("1e400", "1e400")]],
    case("lookup-missing-benign", "GET", "/analyses.json", params={"target": "target"},
         statuses={422}, pattern="benign"),
    case("lookup-unknown-benign", "GET", "/analyses.json",
         params={"benign": "nope", "target": "target"}, statuses={422}, pattern="nope"),
    case("lookup-huge-benign", "GET", "/analyses.json",
         params={"benign": "Q" * 20_000, "target": "target"}, statuses={414, 422}),
    case("lookup-benign-superscript-two", "GET", "/analyses.json",
         params={"benign": "²", "target": "target"}, statuses={422}, pattern="class"),
    case("lookup-attack-cw", "GET", "/analyses.json", params={**QUERY, "attack": "cw"},
         statuses={422}, pattern="attack"),
    case("lookup-targeted-maybe", "GET", "/analyses.json",
         params={**QUERY, "targeted": "maybe"}, statuses={422}, pattern="targeted"),
    case("lookup-same-class", "GET", "/analyses.json",
         params={"benign": "benign", "target": "0"}, statuses={422}, pattern="same class"),
    # POST /analyses
    *[case(f"start-benign-{name}", "POST", "/analyses", json={**OK_PAIR, "benign": value},
           statuses={422}, pattern="benign")
      for name, value in [("true", True), ("1.5", 1.5), ("null", None), ("list", [1]),
                          ("object", {}), ("false", False)]],
    case("start-benign-index-17", "POST", "/analyses", json={**OK_PAIR, "benign": 17},
         statuses={422}, pattern="range|17"),
    case("start-benign-index-minus-1", "POST", "/analyses", json={**OK_PAIR, "benign": -1},
         statuses={422}),
    case("start-benign-superscript-two", "POST", "/analyses", json={**OK_PAIR, "benign": "²"},
         statuses={422}, pattern="class"),
    case("start-benign-5000-digit-string", "POST", "/analyses",
         json={**OK_PAIR, "benign": "9" * 5000}, statuses={422}, pattern="class"),
    case("start-target-4000-digit-string", "POST", "/analyses",
         json={**OK_PAIR, "target": "9" * 4000}, statuses={422}, pattern="class"),
    case("start-benign-huge-int", "POST", "/analyses", json={**OK_PAIR, "benign": 10 ** 40},
         statuses={422}),
    case("start-same-class", "POST", "/analyses", json={"benign": 0, "target": "benign"},
         statuses={422}, pattern="same class"),
    case("start-unknown-class", "POST", "/analyses", json={**OK_PAIR, "target": "giraffe"},
         statuses={422}, pattern="giraffe"),
    case("start-class-name-5000-chars", "POST", "/analyses",
         json={**OK_PAIR, "benign": "Q" * 5000}, statuses={413, 422}),
    case("start-class-name-20-mb", "POST", "/analyses",
         make=lambda: {"json": {**OK_PAIR, "benign": "Q" * 20_000_000}}, statuses={413, 422},
         seconds=10.0),
    case("start-2-mb-body-chunked-without-length", "POST", "/analyses",
         make=lambda: {"content": iter([json.dumps({**OK_PAIR, "benign": "Q" * 2_000_000})
                                        .encode()]),
                       "headers": {"content-type": "application/json"}},
         statuses={411, 413}, seconds=10.0),
    case("start-target-missing", "POST", "/analyses", json={"benign": "benign"},
         statuses={422}, pattern="target"),
    case("start-unknown-field", "POST", "/analyses", json={**OK_PAIR, "colour": "red"},
         statuses={422}, pattern="colour"),
    case("start-attack-cw", "POST", "/analyses", json={**OK_PAIR, "attack": "cw"},
         statuses={422}, pattern="attack"),
    case("start-targeted-maybe", "POST", "/analyses", json={**OK_PAIR, "targeted": "maybe"},
         statuses={422}, pattern="targeted"),
    *[case(f"start-targeted-{name}", "POST", "/analyses", json={**OK_PAIR, "targeted": value},
           statuses={422}, pattern="targeted")
      for name, value in [("no", "no"), ("1", 1), ("string-true", "true")]],
    *[case(f"start-max-strength-{name}", "POST", "/analyses",
           json={**OK_PAIR, "max_strength": value}, statuses={422}, pattern="max_strength")
      for name, value in [("true", True), ("string-3", "3")]],
    *[case(f"start-max-strength-{name}", "POST", "/analyses",
           json={**OK_PAIR, "max_strength": value}, statuses={422}, pattern="max_strength")
      for name, value in [("1e-320", 1e-320), ("minus-1", -1), ("nan-string", "nan"),
                          ("0", 0), ("1e300", 1e300), ("list", [1])]],
    case("start-body-not-json", "POST", "/analyses", content=b'{"benign": 0, "target":',
         headers={"content-type": "application/json"}, statuses={400, 422}),
    case("start-body-a-list", "POST", "/analyses", json=[OK_PAIR], statuses={422}),
    case("start-body-empty", "POST", "/analyses", content=b"",
         headers={"content-type": "application/json"}, statuses={400, 422}),
    case("start-no-content-type", "POST", "/analyses", content=json.dumps(OK_PAIR).encode(),
         statuses={415}, pattern="content-type"),
    case("start-content-type-text-plain", "POST", "/analyses",
         content=json.dumps(OK_PAIR).encode(), headers={"content-type": "text/plain"},
         statuses={415}, pattern="content-type"),
    case("start-origin-evil", "POST", "/analyses", json=OK_PAIR,
         headers={"origin": "http://evil.example"}, statuses={403}),
    case("start-sec-fetch-site-cross-site", "POST", "/analyses", json=OK_PAIR,
         headers={"sec-fetch-site": "cross-site"}, statuses={403}),
    case("start-content-length-not-a-number", "POST", "/analyses", content=b"{}",
         headers={"content-type": "application/json", "content-length": "abc"},
         statuses={400, 413}),
    case("start-get-method", "GET", "/analyses", statuses={405}),
]

EDIT_CASES = [
    *[case(f"{route}-mask-{name}", "POST", f"/graphs/{{key}}/{route}", json={"mask": mask},
           statuses={422}, pattern=pattern)
      for route in ("edit", "edited-model.pt")
      for name, mask, pattern in [
          ("plus-sign", "l1:+1", r"l1:\+1"), ("minus-1", "l1:-1", r"l1:-1"),
          ("full-width-digit", "l1:１", r"neuron id"), ("channel-99", "l1:99", r"l1"),
          ("unknown-layer", "l9:1", r"l9"), ("empty", "", r"empty"),
          ("whole-layer", "l1:0,l1:1,l1:2", r"whole layer")]],
    case("edit-mask-list-of-numbers", "POST", "/graphs/{key}/edit", json={"mask": [1, 2]},
         statuses={422}, pattern="mask"),
    case("edit-mask-null", "POST", "/graphs/{key}/edit", json={"mask": None}, statuses={422},
         pattern="mask"),
    case("edit-mask-missing", "POST", "/graphs/{key}/edit", json={}, statuses={422},
         pattern="mask"),
    case("edit-mask-huge-id", "POST", "/graphs/{key}/edit", json={"mask": "l1:" + "9" * 5000},
         statuses={422}),
    case("edit-mask-200000-ids-string", "POST", "/graphs/{key}/edit",
         make=lambda: {"json": {"mask": ",".join(["l1:0"] * 200_000)}},
         statuses={413, 422}, seconds=10.0),
    case("edit-mask-200000-ids-list", "POST", "/graphs/{key}/edit",
         make=lambda: {"json": {"mask": ["l1:0"] * 200_000}}, statuses={413, 422},
         seconds=10.0),
    case("edit-mode-half", "POST", "/graphs/{key}/edit", json={"mask": "l1:1", "mode": "half"},
         statuses={422}, pattern="mode"),
    case("edit-adaptive-maybe", "POST", "/graphs/{key}/edit",
         json={"mask": "l1:1", "adaptive": "maybe"}, statuses={422}, pattern="adaptive"),
    case("edit-unknown-field", "POST", "/graphs/{key}/edit",
         json={"mask": "l1:1", "colour": "red"}, statuses={422}, pattern="colour"),
    case("edit-body-a-list", "POST", "/graphs/{key}/edit", json=["l1:1"], statuses={422}),
    case("edit-other-model", "POST", "/graphs/{other}/edit", json={"mask": "layer0:1"},
         statuses={409, 422}, pattern="model"),
    case("edit-get-method", "GET", "/graphs/{key}/edit", statuses={405}),
    case("edit-origin-evil", "POST", "/graphs/{key}/edit", json={"mask": "l1:1"},
         headers={"origin": "http://evil.example"}, statuses={403}),
    case("edit-form-body", "POST", "/graphs/{key}/edit", content=b"mask=l1:1",
         headers={"content-type": "application/x-www-form-urlencoded"}, statuses={415}),
    case("export-mode-half", "POST", "/graphs/{key}/edited-model.pt",
         json={"mask": "l1:1", "mode": "half"}, statuses={422}, pattern="mode"),
    case("export-mask-list-of-numbers", "POST", "/graphs/{key}/edited-model.pt",
         json={"mask": [1]}, statuses={422}, pattern="mask"),
    *[case(f"defense-budget-{name}", "POST", "/graphs/{key}/defense", json={"budget": value},
           statuses={422}, pattern="budget")
      for name, value in [("0", 0), ("65", 65), ("100000", 100000), ("minus-1", -1),
                          ("5x", "5x"), ("1.5", 1.5), ("null", None), ("true", True),
                          ("string-3", "3")]],
    case("defense-mode-half", "POST", "/graphs/{key}/defense", json={"budget": 2,
                                                                    "mode": "half"},
         statuses={422}, pattern="mode"),
    case("defense-unknown-field", "POST", "/graphs/{key}/defense",
         json={"budget": 2, "colour": "red"}, statuses={422}, pattern="colour"),
    case("defense-other-model", "POST", "/graphs/{other}/defense", json={"budget": 2},
         statuses={409, 422}, pattern="model"),
    case("defense-status-abc", "GET", "/defenses/abc.json", statuses={404, 422}),
    case("defense-status-999999", "GET", "/defenses/999999.json", statuses={404}),
    case("defense-status-minus-1", "GET", "/defenses/-1.json", statuses={404, 422}),
    case("defense-status-huge-id", "GET", "/defenses/" + "9" * 2000 + ".json",
         statuses={404, 422}),
    case("defense-cancel-999999", "POST", "/defenses/999999/cancel", json={},
         statuses={404}),
    case("defense-cancel-abc", "POST", "/defenses/abc/cancel", json={}, statuses={404, 422}),
    case("defense-status-1.0", "GET", "/defenses/1.0.json", statuses={404, 422}),
    case("cancel-an-analysis-never-asked-for", "POST", "/analyses/never-asked-for/cancel",
         json={}, statuses={404}, pattern="never-asked-for"),
]

NODE_IDS = {"x": "x", "l1-colon": "l1:", "l1-abc": "l1:abc",
            "l1-20-digits": "l1:99999999999999999999", "l9-1": "l9:1", "l1-plus-1": "l1:+1",
            "l1-full-width": "l1:１", "huge": "l1:" + "1" * 5000, "colon-only": ":",
            "l1-minus-1": "l1:-1"}
NODE_CASES = [
    *[case(f"node-{name}-{kind}", "GET", f"/graphs/{{key}}/nodes/{nid}{suffix}",
           statuses={404, 422})
      for name, nid in NODE_IDS.items()
      for kind, suffix in (("json", ".json"), ("picture", "/picture.png"))],
    case("node-page-x", "GET", "/graphs/{key}/nodes/x", statuses={404}),
    case("picture-kind-other", "GET", "/graphs/{key}/nodes/l1:1/other.png", statuses={404}),
    case("picture-kind-huge", "GET", "/graphs/{key}/nodes/l1:1/" + "p" * 5000 + ".png",
         statuses={404, 414}),
    case("picture-kind-jpg", "GET", "/graphs/{key}/nodes/l1:1/picture.jpg", statuses={404}),
    case("picture-not-made-yet", "GET", "/graphs/{key}/nodes/l1:1/picture.png",
         statuses={404}),
    case("no-such-route", "GET", "/no-such-page", statuses={404}),
]

COMPARE_CASES = [
    case("compare-a-missing", "GET", "/compare.json", params={"b": "{key}"}, statuses={422},
         pattern="a: field required"),
    case("compare-b-unknown", "GET", "/compare.json", params={"a": "{key}", "b": "nope"},
         statuses={404}, pattern="no analysis 'nope'"),
    case("compare-b-huge-key", "GET", "/compare.json", params={"a": "{key}", "b": "k" * 5000},
         statuses={404, 414, 422}),
    case("compare-ka-99", "GET", "/compare.json", params={"a": "{key}", "b": "{key}", "ka": "99"},
         statuses={422}, pattern="ka is a strength index"),
    case("compare-ka-minus-1", "GET", "/compare.json",
         params={"a": "{key}", "b": "{key}", "ka": "-1"}, statuses={422}, pattern="ka"),
    case("compare-kb-abc", "GET", "/compare.json",
         params={"a": "{key}", "b": "{key}", "kb": "abc"}, statuses={422}, pattern="kb"),
    case("compare-kb-20-digits", "GET", "/compare.json",
         params={"a": "{key}", "b": "{key}", "kb": "9" * 20}, statuses={422}, pattern="kb"),
    case("compare-damaged-b", "GET", "/compare.json",
         params={"a": "{key}", "b": "damaged-a-list"}, statuses={409}, pattern="damaged"),
    case("compare-other-model", "GET", "/compare.json",
         params={"a": "{key}", "b": "synthetic-small", "kb": "99"}, statuses={422},
         pattern="kb"),
]

HOST_CASES = [  # another site's name for this machine (DNS rebinding): 421, naming the rule
    case("host-another-site", "GET", "/index.json", headers={"host": "evil.example"},
         statuses={421}, pattern=r"evil\.example.*127\.0\.0\.1, localhost, \[::1\].*--host"),
    case("host-another-site-with-port", "GET", "/graphs/{key}.json",
         headers={"host": "evil.example:8000"}, statuses={421}, pattern=r"--host"),
    case("host-another-site-post-with-its-origin", "POST", "/graphs/{key}/edit",
         json={"mask": "l1:1"}, headers={"host": "evil.example:8000",
                                         "origin": "http://evil.example:8000"},
         statuses={421}, pattern=r"--host"),
    case("host-loopback-as-a-subdomain", "GET", "/index.json",
         headers={"host": "127.0.0.1.evil.example:8000"}, statuses={421}),
    case("host-port-not-a-number", "GET", "/index.json", headers={"host": "127.0.0.1:abc"},
         statuses={421}),
    case("host-huge", "GET", "/index.json", headers={"host": "h" * 5000}, statuses={421}),
    case("host-another-ip-address", "GET", "/", headers={"host": "10.1.2.3:8000"},
         statuses={421}),
]

HTTP_CASES = [*LONG_KEY_CASES, *ODD_KEY_CASES, *ANALYSIS_CASES, *EDIT_CASES, *NODE_CASES,
              *DAMAGED_CASES, *COMPARE_CASES, *HOST_CASES]


def http_request(h: H, server: Server) -> tuple[str, dict[str, Any]]:
    """The path and the ``httpx`` arguments of the case, for the planted analysis."""
    kw = {"json": h.json, "content": h.content, "headers": h.headers, "params": h.params}
    if h.make is not None:
        kw.update(h.make())
    kw = {k: v for k, v in kw.items() if v is not None}
    path = h.path.replace("{key}", server.key).replace("{other}", "synthetic-small")
    if h.params:
        kw["params"] = {k: v.replace("{key}", server.key) for k, v in h.params.items()}
    return path, kw


@pytest.mark.parametrize("h", HTTP_CASES)
def test_http_refuses_bad_input_with_a_json_detail(server, sandbox, h):
    path, kw = http_request(h, server)
    inputs = [path] + strings_in(kw.get("json")) + strings_in(kw.get("params") or {}) \
        + strings_in(kw.get("headers") or {})
    if isinstance(kw.get("content"), bytes):
        inputs += strings_in(kw["content"])
    r = server.client.request(h.method, path, **kw)
    problems = http_problems(r, inputs, server.hidden, h.statuses, h.pattern)
    problems += sandbox.problems()
    assert not problems, "; ".join(problems) + f"\n--- body: {r.text[:1500]}"


@pytest.mark.timing
@pytest.mark.parametrize("h", HTTP_CASES)
def test_http_refuses_bad_input_in_time(server, h):
    """Timing (``pytest -m timing``): each bad request is answered within its ``seconds``."""
    path, kw = http_request(h, server)
    started = time.perf_counter()
    r = server.client.request(h.method, path, **kw)
    seconds = time.perf_counter() - started
    print(f"\nanswered {r.status_code} in {seconds:.2f} s (at most {h.seconds:g} s)")
    assert 400 <= r.status_code < 500, r.text[:500]
    assert seconds <= h.seconds, f"took {seconds:.1f} s"


@pytest.mark.parametrize("name", list(BROKEN_CONTRACT))
def test_http_refuses_a_graph_breaking_the_contract_naming_the_field(server, name):
    key = contract_key(name)
    for path, params in [(f"/graphs/{key}.json", None), (f"/graphs/{key}/report.html", None),
                         ("/compare.json", {"a": server.key, "b": key})]:
        r = server.client.get(path, params=params)
        problems = http_problems(r, [], server.hidden, {409}, BROKEN_CONTRACT[name][1])
        assert not problems, f"{path}: " + "; ".join(problems) + f"\n--- body: {r.text[:500]}"


def test_index_lists_only_the_good_analyses_of_a_damaged_workspace(server):
    r = server.client.get("/index.json")
    assert r.status_code == 200, r.text
    keys = {a["key"] for a in r.json()["analyses"]}
    assert keys == {server.key, "synthetic-small"}
    assert not any(p in r.text for p in server.hidden)


def test_the_server_is_still_well_after_the_sweep(server):
    """After all the bad requests, good ones still work (nothing was left locked or broken)."""
    r = server.client.post(f"/graphs/{server.key}/edit", json={"mask": "l1:1",
                                                                "adaptive": False})
    assert r.status_code == 200, r.text
    assert server.client.get(f"/graphs/{server.key}.json").status_code == 200


def test_the_sweep_is_big_enough():
    assert len(CLI_CASES) + len(REAL_CASES) >= 70
    assert len(HTTP_CASES) >= 90
    assert len(CLI_CASES) + len(REAL_CASES) + len(HTTP_CASES) >= 150
