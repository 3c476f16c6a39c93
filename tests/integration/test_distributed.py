"""Real ``torchrun`` processes (gloo, CPU): the shared analysis equals the one-process one, a
killed rank stops every rank with one clear line, and the killed run resumes in any world
size."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MASSIF = str(Path(sys.executable).parent / "massif")
COMMON = ["analyze", "--benign", "Sneaker", "--target", "Sandal", "--max-images", "300",
          "--no-pictures", "--device", "cpu"]


def torchrun(n: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={n}", "-m", "massif", *args]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.update({"OMP_NUM_THREADS": "1", **extra})
    return e


def assert_same_graph(a: Path, b: Path) -> None:
    """The same nodes, groups and edges; every number within 1e-6 relative."""

    def walk(x: object, y: object, where: str) -> None:
        if isinstance(x, dict):
            assert isinstance(y, dict) and set(x) == set(y), where
            for k in x:
                walk(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, list):
            assert isinstance(y, list) and len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif isinstance(x, float) or isinstance(y, float):
            assert math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12), (where, x, y)
        else:
            assert x == y, (where, x, y)

    ga, gb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ga["nodes"] and ga["edges"]
    walk(ga, gb, "graph")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    subprocess.run([MASSIF, *COMMON, "--out", str(out)], check=True, capture_output=True,
                   timeout=300, env=env())
    return out / "graph.json"


def test_two_processes_write_the_one_process_graph(one_process, tmp_path):
    out = tmp_path / "two"
    done = subprocess.run(torchrun(2, [*COMMON, "--out", str(out)]), capture_output=True,
                          text=True, timeout=300, env=env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_graph(one_process, out / "graph.json")
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    assert sorted(p.name for p in out.iterdir()) == ["graph.json"]  # no checkpoint left


def ranks(pattern: str) -> dict[int, int]:
    """pid per rank of the running ``massif`` processes started by torchrun."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if pattern.encode() not in b" ".join(cmd) or b"torch.distributed.run" in b" ".join(cmd):
            continue
        for var in environ:
            if var.startswith(b"RANK="):
                found[int(var[5:])] = int(proc.name)
    return found


def test_a_killed_rank_stops_every_rank_and_the_run_resumes(one_process, tmp_path):
    out = tmp_path / "killed"
    args = [*COMMON, "--batch-size", "16", "--out", str(out)]
    proc = subprocess.Popen(torchrun(2, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(MASSIF_CHECKPOINT_SECONDS="0"))
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".*.profile.pt")):  # a checkpoint: the run is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        pids = ranks(str(out))
        assert set(pids) == {0, 1}
        os.kill(pids[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # never a hang
    finally:
        proc.kill()
    assert proc.returncode != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("massif: error:")]
    assert len(lines) == 1 and lines[0].startswith("massif: error: rank 0:"), err[-2000:]
    assert "massif/" not in "".join(ln for ln in err.splitlines() if ln.startswith("  File"))
    assert not (out / "graph.json").exists()
    # Resumed in another world size (one process) from rank 0's checkpoint: the same graph.
    done = subprocess.run([MASSIF, *args], capture_output=True, text=True, timeout=300,
                          env=env())
    assert done.returncode == 0, done.stderr[-2000:]
    first = re.search(r"profile neurons[^|]*\|[^|]*\| *(\d+)/300", done.stderr)
    assert first and int(first.group(1)) > 0, done.stderr[:500]  # resumed, not started over
    assert_same_graph(one_process, out / "graph.json")


def test_commands_that_serve_or_edit_refuse_torchrun(tmp_path):
    done = subprocess.run([MASSIF, "serve", str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env=env(WORLD_SIZE="2", RANK="0"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "massif: error: massif serve runs in one process; start it without torchrun (only "
        "analyze shares its work among processes)"]
