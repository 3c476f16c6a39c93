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
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.cli import MASSIF
from tests.helpers.waiting import wait_for

# One batch size for every run: each image is then computed in the same batch, at the same
# place, in any world size (``World.rounds``), so the runs differ by float64 rounding alone.
COMMON = ["analyze", "--benign", "Sneaker", "--target", "Sandal", "--max-images", "300",
          "--device", "cpu", "--batch-size", "16"]
NO_PICTURES = [*COMMON, "--no-pictures"]


def torchrun(n: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={n}", "-m", "massif", *args]


def env(tmp: Path, **extra: str) -> dict[str, str]:
    """One thread a process; temp files in ``tmp/tmp`` (torchrun leaves its log folder there,
    torchelastic_*, whatever the run does)."""
    (tmp / "tmp").mkdir(exist_ok=True)
    e = dict(os.environ)
    e.update({"OMP_NUM_THREADS": "1", "TMPDIR": str(tmp / "tmp"), **extra})
    return e


def assert_same_graph(a: Path, b: Path) -> None:
    """The same nodes, groups and edges; every number within 1e-9 relative.

    Why 1e-9: the runs compute every image in the same batch at the same place, so each
    image's float32 numbers are the same bits, and the class sums (float64) differ only in the
    order of their additions: at most about n·2⁻⁵³ ≈ 3e-14 relative for the n ≤ 300 nonnegative
    terms of an importance, more where the signed terms of an influence cancel. A batch
    arranged otherwise (the strided shards of old) moves float32 numbers by ~1e-6 relative on
    some CPUs, which this catches."""

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
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15), (where, x, y)
        else:
            assert x == y, (where, x, y)

    ga, gb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ga["nodes"] and ga["edges"]
    walk(ga, gb, "graph")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process's graph.json, its pictures in ``../cache``."""
    root = tmp_path_factory.mktemp("one")
    subprocess.run([MASSIF, *COMMON, "--out", str(root / "run"), "--cache", str(root / "cache")],
                   check=True, capture_output=True, timeout=600, env=env(root))
    return root / "run" / "graph.json"


def read_png(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im).astype(np.float32) / 255)


def test_two_processes_write_the_one_process_graph_and_pictures(one_process, tmp_path):
    out, cache = tmp_path / "two", tmp_path / "cache"
    done = subprocess.run(torchrun(2, [*COMMON, "--out", str(out), "--cache", str(cache),
                                       "--workers", "2"]),
                          capture_output=True, text=True, timeout=600, env=env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_graph(one_process, out / "graph.json")
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    assert sorted(p.name for p in out.iterdir()) == ["graph.json"]  # no checkpoint left
    # Pictures: the same files; examples merged from the two shares equal one pass's exactly;
    # each feature visualization was optimised in another batch (float rounding differs with
    # the batch, and 256 steps of ascent can amplify it), so most are equal, not all.
    alone = one_process.parent.parent / "cache"
    files = sorted(p.relative_to(alone) for p in alone.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(cache) for p in cache.rglob("*")
                                     if p.is_file())
    pictures = [f for f in files if f.parts[0] == "pictures"]
    assert len(pictures) == len(json.loads(one_process.read_text())["nodes"])
    for f in files:
        if f.suffix == ".json":
            assert (alone / f).read_bytes() == (cache / f).read_bytes(), f
        elif f.parts[0] == "examples":
            assert torch.equal(read_png(alone / f), read_png(cache / f)), f
    alike = [torch.corrcoef(torch.stack([read_png(alone / f).flatten(),
                                         read_png(cache / f).flatten()]))[0, 1] > 0.95
             for f in pictures]
    assert sum(alike) >= 0.75 * len(pictures)


def test_a_token_model_shares_its_analysis_over_two_processes(tmp_path):
    """bundled-vit (MLP units of token layers, pooled over the patch tokens): two processes
    write the one-process graph, as for a convolution model."""
    args = ["analyze", "--model", "bundled-vit", "--benign", "Sneaker", "--target", "Sandal",
            "--max-images", "120", "--device", "cpu", "--batch-size", "16", "--no-pictures"]
    alone = subprocess.run([MASSIF, *args, "--out", str(tmp_path / "one")], capture_output=True,
                           text=True, timeout=600, env=env(tmp_path))
    assert alone.returncode == 0, alone.stderr[-2000:]
    two = subprocess.run(torchrun(2, [*args, "--out", str(tmp_path / "two")]),
                         capture_output=True, text=True, timeout=600, env=env(tmp_path))
    assert two.returncode == 0, two.stderr[-2000:]
    graph = json.loads((tmp_path / "two" / "graph.json").read_text())
    assert graph["model"]["name"] == "bundled-vit"
    assert {n["layer"] for n in graph["nodes"]} <= {"mlp1", "mlp2", "mlp3", "mlp4"}
    assert_same_graph(tmp_path / "one" / "graph.json", tmp_path / "two" / "graph.json")


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
    args = [*NO_PICTURES, "--out", str(out)]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: no rank blocks on a full pipe
    with log.open("w") as f:
        proc = subprocess.Popen(torchrun(2, args), stdout=subprocess.DEVNULL, stderr=f,
                                env=env(tmp_path, MASSIF_CHECKPOINT_SECONDS="0"))
    try:
        # a checkpoint: the run is under way
        wait_for(lambda: proc.poll() is not None or list(out.glob(".*.profile.pt")), 300,
                 "rank 0's first checkpoint")
        assert proc.poll() is None, log.read_text()[-2000:]
        pids = ranks(str(out))
        assert set(pids) == {0, 1}
        os.kill(pids[1], signal.SIGKILL)
        proc.wait(timeout=120)  # never a hang
    finally:
        proc.kill()
    err = log.read_text()
    assert proc.returncode != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("massif: error:")]
    assert len(lines) == 1 and lines[0].startswith("massif: error: rank 0:"), err[-2000:]
    # torchrun prints its own traceback; none of its frames may be ours
    assert not re.search(r'File "[^"]*(src|site-packages)/massif/', err), err[-2000:]
    assert not (out / "graph.json").exists()
    # Resumed in another world size (one process) from rank 0's checkpoint: the same graph.
    done = subprocess.run([MASSIF, *args], capture_output=True, text=True, timeout=300,
                          env=env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    first = re.search(r"profile neurons[^|]*\|[^|]*\| *(\d+)/300", done.stderr)
    assert first and int(first.group(1)) > 0, done.stderr[:500]  # resumed, not started over
    assert_same_graph(one_process, out / "graph.json")


def _batch_sizes(rank: int, tmp: str) -> None:
    """One of two gloo processes: its own batch size ``20 - 7 · rank``, then what the ranks
    agree on, written to ``tmp/<rank>``."""
    import torch.distributed as dist

    from massif.distributed import World

    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=2)
    try:
        world, mine = World(rank, 2), 20 - 7 * rank
        Path(tmp, str(rank)).write_text(f"{world.smallest(mine)} {world.share(mine)}")
    finally:
        dist.destroy_process_group()


def test_every_rank_runs_the_smallest_batch_size(tmp_path):
    """Each GPU sizes its batch to its own free memory; the rounds need one size, which must
    fit every GPU: the smallest (rank 0's would not fit a fuller GPU)."""
    torch.multiprocessing.start_processes(_batch_sizes, args=(str(tmp_path),), nprocs=2,
                                          start_method="spawn")
    assert [(tmp_path / r).read_text() for r in ("0", "1")] == ["13 20", "13 20"]


@pytest.mark.parametrize("command", ["serve", "demo", "edit"])
def test_commands_that_do_not_share_their_work_refuse_torchrun(command, tmp_path):
    done = subprocess.run([MASSIF, command], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env(tmp_path, WORLD_SIZE="2", RANK="0"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"massif: error: massif {command} runs in one process; start it without torchrun "
        "(analyze, visualize and examples share their work among processes)"]


@pytest.mark.parametrize(("variables", "message"), [
    ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE must be a whole number"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK is not"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASSIF_DIST_TIMEOUT": "soon"},
     "MASSIF_DIST_TIMEOUT must be a number of seconds"),
])
def test_a_broken_torchrun_environment_is_one_line(variables, message, tmp_path):
    done = subprocess.run([MASSIF, *NO_PICTURES, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env=env(tmp_path, **variables))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("massif: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_examples_and_visualize_share_their_work_under_torchrun(tmp_path):
    """``massif examples``: two shares merged on rank 0 equal one pass; ``massif visualize``:
    every picture written once, by rank 0."""
    for n, cache in ((1, tmp_path / "one"), (2, tmp_path / "two")):
        args = ["examples", "--layers", "mixed3a", "--examples-images", "2000", "--device",
                "cpu", "--cache", str(cache)]
        cmd = torchrun(n, args) if n > 1 else [MASSIF, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env(tmp_path))
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("dataset examples of") == 1
        assert "a sample of 2000 of its 10000 images" in done.stdout
    one = sorted((tmp_path / "one").rglob("*.json"))
    assert len(one) == 1
    twin = tmp_path / "two" / one[0].relative_to(tmp_path / "one")
    assert one[0].read_bytes() == twin.read_bytes()
    done = subprocess.run(torchrun(2, ["visualize", "--neurons", "mixed3a:1,mixed3a:2,mixed4a:3",
                                       "--steps", "8", "--device", "cpu", "--cache",
                                       str(tmp_path / "viz")]),
                          capture_output=True, text=True, timeout=300, env=env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("3 feature visualizations") == 1
    assert len(list((tmp_path / "viz").rglob("*.png"))) == 3
