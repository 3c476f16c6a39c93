"""The real ``massif`` console script: a working run, and every kind of bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import massif
from massif.comparison import Comparison
from massif.schemas import Graph
from tests.helpers.cli import MASSIF
from tests.helpers.cli import run_massif as run
from tests.helpers.waiting import wait_for

TINY_MODEL = '''
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))

def build():
    torch.manual_seed(0)
    return Tiny()

def broken():
    return 42
'''


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("massif: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    (root / "tiny.py").write_text(TINY_MODEL)
    spec = {}
    exec(TINY_MODEL, spec)  # the same model, to write a matching checkpoint
    torch.save(spec["build"]().state_dict(), root / "tiny.pt")
    (root / "corrupt.pt").write_bytes(b"this is not a checkpoint" * 10)
    data = root / "data"
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(["circle", "square", "stripe"]):
        (data / name).mkdir(parents=True)
        for i in range(6):
            arr = (torch.rand(8, 8, generator=g) * 80 + 60 * c).clamp(0, 255).byte().numpy()
            Image.fromarray(arr, "L").save(data / name / f"{i}.png")
    return root


HELP_IMPORTS = """
import sys
from massif.cli import main
sys.argv = ["massif", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
"""


def test_help_lists_commands_and_imports_no_torch():
    """``massif --help`` answers at once because it imports no torch (the commands import it
    when they run); how long it takes is ``test_help_is_instant`` (timing)."""
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("analyze", "demo", "download-data"):
        assert cmd in proc.stdout
    for args in (["--help"], ["analyze", "--help"], ["edit", "--help"]):
        done = subprocess.run([sys.executable, "-c", HELP_IMPORTS, *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and "Usage" in done.stdout, done.stderr
        assert done.stdout.splitlines()[-1] == "[]", (args, done.stdout.splitlines()[-1])
    sub = run("analyze", "--help")
    for opt in ("--benign", "--target", "--attack", "--untargeted", "--max-strength", "--steps",
                "--strengths", "--model", "--weights", "--data", "--layers", "--image-size",
                "--nodes-per-layer", "--edges-per-node", "--importance", "--out"):
        assert opt in sub.stdout


@pytest.mark.timing
def test_help_is_instant():
    t = time.perf_counter()
    proc = run("--help")
    seconds = time.perf_counter() - t
    print(f"\nmassif --help: {seconds:.2f} s")
    assert proc.returncode == 0 and seconds < 10


def test_analyze_bundled_writes_a_valid_graph(tmp_path):
    out = tmp_path / "run"
    proc = run("analyze", "--benign", "Sneaker", "--target", "Sandal", "--max-images", "64",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    graph = Graph.load(out / "graph.json")
    assert graph.benign.name == "Sneaker" and graph.target.name == "Sandal"
    assert graph.attack.strengths == pytest.approx([0.5 * i for i in range(8)])
    assert len(graph.metrics.attack_success_rate) == 8
    assert {n.group for n in graph.nodes} <= {"suppressed", "shared", "emphasized"}
    assert "attack success rate by strength" in proc.stdout
    assert "divergence layer" in proc.stdout
    assert "profile neurons" in proc.stderr  # progress goes to stderr
    assert "profile neurons" not in proc.stdout
    # ... and the pictures of every node of the graph, in the (test run's) cache
    cache = Path(os.environ["MASSIF_CACHE"])
    for n in graph.nodes:
        assert (cache / "pictures" / graph.model.fingerprint / n.layer
                / f"{n.channel}.png").is_file()
        assert (cache / "examples" / f"{graph.model.fingerprint}-{graph.dataset.fingerprint}"
                / n.layer / f"{n.channel}.png").is_file()

    # massif compare: the run against itself at ε = 1 (two strengths of one analysis)
    proc = run("compare", f"{out}@1.2", str(out))  # the largest strength up to 1.2: 1
    assert proc.returncode == 0, proc.stderr
    assert "at ε = 1, model bundled" in proc.stdout and "at ε = 3.5, model bundled" in proc.stdout
    as_json = run("compare", f"{out}@1.2", str(out / "graph.json"), "--json")
    c = Comparison.model_validate_json(as_json.stdout)
    assert c == massif.compare(graph, graph, 1.0, None, "run", "run")
    assert c.a.strength == 1.0 and c.same_model
    moved = [n.id for n in c.neurons if n.b == "emphasized" and n.a != "emphasized"]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("emphasized in B only"))
    listed = re.findall(r"(\w+:\d+) \(", line)
    assert moved and listed and set(listed) <= set(moved)


def test_user_model_file_and_imagefolder(user_files, tmp_path):
    out = tmp_path / "user"
    proc = run("analyze", "--model", f"{user_files / 'tiny.py'}:build", "--weights",
               str(user_files / "tiny.pt"), "--data", str(user_files / "data"),
               "--layers", "conv1,conv2", "--image-size", "8", "--benign", "circle",
               "--target", "stripe", "--attack", "pgd-l2", "--steps", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    graph = json.loads((out / "graph.json").read_text())
    assert graph["layers"] == ["conv1", "conv2"]
    assert graph["benign"] == {"index": 0, "name": "circle", "n_images": 6}
    assert graph["attack"]["name"] == "pgd" and graph["attack"]["norm"] == "l2"
    assert all(n["id"] == f"{n['layer']}:{n['channel']}" for n in graph["nodes"])


@pytest.mark.parametrize("case", [
    "unknown-class", "unknown-layer", "missing-weights", "corrupt-weights", "no-factory",
    "not-a-module", "empty-class", "unreadable-image", "strengths", "same-class", "bad-attack",
    "wrong-shape", "nan-model",
])
def test_bad_input_gives_one_clear_line(case, user_files, tmp_path):
    model = f"{user_files / 'tiny.py'}:build"
    data = str(user_files / "data")
    base = ["analyze", "--model", model, "--data", data, "--image-size", "8",
            "--benign", "circle", "--target", "square", "--out", str(tmp_path / "x")]
    if case == "unknown-class":
        proc = run("analyze", "--benign", "Sneakr", "--out", str(tmp_path / "x"))
        assert_clean_error(proc, "unknown class 'Sneakr'", "did you mean: Sneaker")
    elif case == "unknown-layer":
        proc = run("analyze", "--layers", "mixed3a,mixed9z", "--out", str(tmp_path / "x"))
        assert_clean_error(proc, "unknown layer 'mixed9z'", "did you mean")
    elif case == "missing-weights":
        proc = run(*base, "--weights", str(tmp_path / "nope.pt"))
        assert_clean_error(proc, "does not exist")
    elif case == "corrupt-weights":
        proc = run(*base, "--weights", str(user_files / "corrupt.pt"))
        assert_clean_error(proc, "cannot load weights")
    elif case == "no-factory":
        base[2] = f"{user_files / 'tiny.py'}:buld"
        proc = run(*base)
        assert_clean_error(proc, "unknown factory", "did you mean: build")
    elif case == "not-a-module":
        base[2] = f"{user_files / 'tiny.py'}:broken"
        proc = run(*base)
        assert_clean_error(proc, "not a torch nn.Module")
    elif case == "empty-class":
        bad = tmp_path / "data"
        (bad / "a").mkdir(parents=True)
        (bad / "b").mkdir()
        Image.new("L", (8, 8)).save(bad / "a" / "0.png")
        base[4] = str(bad)
        proc = run(*base)
        assert_clean_error(proc, "holds no images", str(bad / "b"))
    elif case == "unreadable-image":
        bad = tmp_path / "data"
        for name in ("circle", "square", "stripe"):
            (bad / name).mkdir(parents=True)
            Image.new("L", (8, 8)).save(bad / name / "0.png")
        (bad / "circle" / "1.png").write_bytes(b"garbage")
        base[4] = str(bad)
        proc = run(*base)
        assert_clean_error(proc, "cannot read image", "1.png")
    elif case == "strengths":
        proc = run(*base, "--strengths", "0,1,0.5")
        assert_clean_error(proc, "strictly increasing")
    elif case == "same-class":
        proc = run("analyze", "--benign", "Bag", "--target", "bag")
        assert_clean_error(proc, "same class")
    elif case == "bad-attack":
        proc = run("analyze", "--attack", "deepfool")
        assert_clean_error(proc, "unknown attack")
    elif case == "wrong-shape":
        proc = run("analyze", "--data", data, "--benign", "circle", "--target", "square",
                   "--model", model, "--image-size", "8", "--layers", "fc")
        assert_clean_error(proc, "layer fc cannot be analysed", "not a map [B, C, H, W]")
    elif case == "nan-model":
        nan_file = tmp_path / "nan.py"
        nan_file.write_text(TINY_MODEL + "\ndef nan():\n    m = build()\n"
                            "    torch.nn.init.constant_(m.fc.bias, float('nan'))\n"
                            "    return m\n")
        base[2] = f"{nan_file}:nan"
        proc = run(*base)
        assert_clean_error(proc, "NaN")


# Six batches of Sneakers: enough for a checkpoint before the kill and batches after it, and a
# fifth of the default's work, so the three runs below stay far from their time limits on a
# busy 2-core machine (a fresh-clone run at load 8 passed 300 s on the whole class).
SMALL_RUN = ["--batch-size", "50", "--max-images", "300", "--no-pictures"]


def start_and_kill(out: Path, log: Path) -> str:
    """An analysis into ``out``, killed (SIGKILL) as soon as it has saved a checkpoint of its
    neuron profile; what it wrote on stderr."""
    env = dict(os.environ, MASSIF_CHECKPOINT_SECONDS="0")
    with log.open("w") as err:
        proc = subprocess.Popen([MASSIF, "analyze", *SMALL_RUN, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env,
                                stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or list(out.glob("*.profile.pt")), 300,
                 "a checkpoint of the neuron profile")
        assert proc.poll() is None, log.read_text()[-2000:]  # killed, not ended
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return log.read_text()


def test_a_killed_run_leaves_no_graph_and_resumes(tmp_path):
    out = tmp_path / "killed"
    seen = start_and_kill(out, tmp_path / "killed.log")
    assert "profile neurons" in seen
    assert not (out / "graph.json").exists()
    leftovers = sorted(p.name for p in out.iterdir())
    assert any(name.endswith(".profile.pt") for name in leftovers), leftovers
    assert all(name.endswith((".means.pt", ".profile.pt")) for name in leftovers), leftovers
    # the rerun picks up the saved batches and gives the uninterrupted run's answer
    resumed = run("analyze", *SMALL_RUN, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "profile neurons (all strengths):   0%" not in resumed.stderr
    assert "class means (clean, both classes):   0%" not in resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["graph.json"]  # checkpoints cleared
    fresh = run("analyze", *SMALL_RUN, "--out", str(tmp_path / "fresh"))
    a = Graph.load(out / "graph.json")
    b = Graph.load(tmp_path / "fresh" / "graph.json")
    assert [n.id for n in a.nodes] == [n.id for n in b.nodes]
    assert a.metrics.attack_success_rate == b.metrics.attack_success_rate
    for na, nb in zip(a.nodes, b.nodes):
        assert na.importance_target == pytest.approx(nb.importance_target, rel=1e-9)
    assert a.metrics.divergence == b.metrics.divergence
    assert fresh.returncode == 0


def test_visualize_and_examples_commands_cache_their_pictures(tmp_path):
    cache = tmp_path / "cache"
    proc = run("visualize", "--neurons", "mixed4a:1,mixed5a:2", "--steps", "16", "--cache",
               str(cache))
    assert proc.returncode == 0, proc.stderr
    assert "2 feature visualizations" in proc.stdout
    pngs = sorted(cache.glob("pictures/*/*/*.png"))
    assert [(p.parent.name, p.name) for p in pngs] == [("mixed4a", "1.png"), ("mixed5a", "2.png")]
    stamp = [p.stat().st_mtime_ns for p in pngs]
    again = run("visualize", "--neurons", "mixed4a:1,mixed5a:2", "--steps", "16", "--cache",
                str(cache))
    assert again.returncode == 0 and [p.stat().st_mtime_ns for p in pngs] == stamp  # cached
    proc = run("examples", "--layers", "mixed5a", "--top", "4", "--cache", str(cache))
    assert proc.returncode == 0, proc.stderr
    strips = list(cache.glob("examples/*/mixed5a/*.png"))
    assert len(strips) == 96  # every channel of mixed5a
    index = json.loads(next(cache.glob("examples/*/mixed5a.json")).read_text())
    assert index  # image indices, values, positions and boxes per channel
    assert_clean_error(run("visualize", "--neurons", "mixed9z:1", "--cache", str(cache)),
                       "unknown layer 'mixed9z'")
    assert_clean_error(run("visualize", "--neurons", "mixed4a:999", "--cache", str(cache)),
                       "mixed4a")
    assert_clean_error(run("examples", "--data", str(tmp_path / "nowhere")), "does not exist")


def test_edit_gives_the_python_api_numbers_and_exports_the_model(tmp_path):
    from massif.edit import Editor, EditResult, apply_mask

    mask = "mixed4a:12,mixed4b:3"
    proc = run("edit", "--mask", mask, "--max-images", "200", "--json", "--export",
               str(tmp_path / "edited.pt"))
    assert proc.returncode == 0, proc.stderr
    result = EditResult.model_validate_json(proc.stdout)
    editor = Editor("bundled", benign="Sneaker", target="Sandal", max_images=200, device="cpu")
    expected = editor.evaluate(mask.split(","))
    assert result.model_dump(exclude={"seconds"}) == expected.model_dump(exclude={"seconds"})
    table = run("edit", "--mask", mask, "--max-images", "200")
    assert table.returncode == 0 and "before" in table.stdout and "after" in table.stdout
    # The exported model, rebuilt outside MASSIF, is the edited model.
    from massif.bundled.net import FashionInception

    edited = apply_mask(FashionInception(), tmp_path / "edited.pt").eval()
    x = editor.session.images[:16]
    with torch.no_grad(), editor.edited(mask.split(",")) as net:
        assert torch.allclose(edited(x), net(x), atol=1e-5)


@pytest.mark.parametrize("args, needle", [
    (["--mask", "mixed4a:999"], "mixed4a"),
    (["--mask", "mixed9z:1"], "unknown layer"),
    (["--mask", ","], "empty"),
    ([], "give --mask"),
    (["--mask", "mixed4a:1", "--mode", "half"], "--mode"),
    (["--mask", "mixed4a:1", "--benign", "Sneakr"], "unknown class"),
])
def test_bad_edit_requests_give_one_clear_line(args, needle):
    assert_clean_error(run("edit", "--max-images", "50", *args), needle)
