"""What the real ``massif`` commands leave behind: a rerun clears the temporary files of a killed
run, a failed command removes the folders it made for nothing, an ordinary run puts nothing in
the temporary folder; and a failure under torchrun is said once, every process exiting 2."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import massif
from tests.helpers.cli import MASSIF
from tests.helpers.killed import killed_writer
from tests.helpers.synthetic import synthetic_graph

SMALL = ["analyze", "--max-images", "16", "--steps", "3", "--no-pictures", "--device", "cpu"]


def run(*args: str, env: dict[str, str] | None = None,
        **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([MASSIF, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=env, **kw)


def own_temp(tmp_path: Path) -> dict[str, str]:
    """The environment with a temporary folder of the test's own (and no inherited
    ``TORCHINDUCTOR_CACHE_DIR``, which torch sets in any process that imported its compiler,
    and which would hide the folder it makes)."""
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    return {**env, "TMPDIR": str(tmp_path / "tmp")}


def test_a_rerun_removes_the_temporary_files_that_killed_runs_left(tmp_path):
    """A checkpoint, a report and a picture each being written when kill -9 came: the next
    run in each folder removes the leftover, and only the dead process's; a running one stays."""
    out, reports, cache = tmp_path / "run", tmp_path / "reports", tmp_path / "cache"
    layer = cache / "pictures" / massif.load_model("bundled").fingerprint / "mixed4a"
    for folder in (out, reports, layer):
        folder.mkdir(parents=True)
    stale = [killed_writer(out / "sneaker-sandal.profile.pt"),
             killed_writer(reports / "r.html"), killed_writer(layer / "1.png")]
    code = ("import sys, time; from massif.files import create_temp; "
            "create_temp(sys.argv[1]); print(flush=True); time.sleep(120)")
    alive = subprocess.Popen([sys.executable, "-c", code, str(out / "graph.json")],
                             stdout=subprocess.PIPE)  # another process, writing right now
    try:
        alive.stdout.readline()
        (writing,) = out.glob(".graph.json.*.part")
        done = run(*SMALL, "--out", str(out))
        assert done.returncode == 0, done.stderr
        done = run("report", str(out), "-o", str(reports / "r.html"))
        assert done.returncode == 0, done.stderr
        done = run("visualize", "--neurons", "mixed4a:1", "--steps", "4", "--device", "cpu",
                   "--cache", str(cache))
        assert done.returncode == 0, done.stderr
        assert writing.exists()
    finally:
        alive.kill()
        alive.wait()
    for part in stale:
        assert not part.exists(), part
    assert sorted(p.name for p in out.iterdir()) == sorted(["graph.json", writing.name])
    assert [p.name for p in reports.iterdir()] == ["r.html"]
    assert "sneaker" in (reports / "r.html").read_text().lower()
    assert [p.name for p in layer.iterdir()] == ["1.png"]


def test_a_failed_command_removes_the_folders_it_made(tmp_path):
    run_dir = tmp_path / "run"
    synthetic_graph().save(run_dir / "graph.json")

    def small_files() -> None:  # a disk that takes no file over 64 KB: the report is larger
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    full = run("report", str(run_dir), "-o", str(tmp_path / "new" / "deeper" / "r.html"),
               preexec_fn=small_files)
    assert full.returncode == 2, full.stderr
    assert full.stderr.startswith("massif: error: File too large"), full.stderr
    for args in (["visualize", "--neurons", "mixed9z:1"], ["visualize", "--neurons", "mixed4a:999"],
                 ["examples", "--layers", "mixed9z"]):
        failed = run(*args, "--device", "cpu", "--cache", str(tmp_path / "new" / "cache"))
        assert failed.returncode == 2 and failed.stderr.startswith("massif: error:"), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_server_that_cannot_start_leaves_no_folder(tmp_path):
    """``serve`` with a model that does not load, ``demo`` on a port in use: the workspace and
    cache folders they made for it are gone with the error line."""
    import socket

    failed = run("serve", str(tmp_path / "new" / "ws"), "--model", "nonexistent", "--device",
                 "cpu", "--cache", str(tmp_path / "new" / "cache"))
    assert failed.returncode == 2 and failed.stderr.startswith("massif: error:"), failed.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args in (["serve", str(tmp_path / "new" / "ws"), "--device", "cpu"],
                     ["demo", "--workspace", str(tmp_path / "new" / "demo")]):
            failed = run(*args, "--port", port, env={**os.environ,
                                                     "MASSIF_CACHE": str(tmp_path / "new" / "c")})
            assert failed.returncode == 2, failed.stderr
            assert "port" in failed.stderr and failed.stderr.startswith("massif: error:"), args
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_ordinary_run_leaves_nothing_in_the_temporary_folder(tmp_path):
    env = own_temp(tmp_path)
    done = run("visualize", "--neurons", "mixed4a:1", "--steps", "4", "--device", "cpu",
               "--cache", str(tmp_path / "cache"), env=env)
    assert done.returncode == 0, done.stderr
    done = run(*SMALL, "--out", str(tmp_path / "run"), env=env)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "tmp") == []  # no torchinductor_<user>, nothing else


def test_a_failure_under_torchrun_is_said_once_and_every_process_exits_2(tmp_path):
    """Both processes meet the unknown class once they have joined: the first to fail says
    it; torchrun's report lists each process's exit status."""
    env = {**own_temp(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "massif", *SMALL, "--benign", "Sneakr", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("massif: error:")]
    assert len(lines) == 1 and "unknown class 'Sneakr'" in lines[0], done.stderr[-3000:]
    codes = re.findall(r"^\s+exitcode\s+: (-?\d+)", done.stderr, re.M)
    assert codes == ["2", "2"], done.stderr[-3000:]
    assert not (tmp_path / "out").exists()


def test_a_bad_option_before_the_processes_join_is_said_by_the_first_of_each_machine(tmp_path):
    """Without torchrun's store (processes started by hand with its variables), a bad option,
    which every process meets alike, is said by ``LOCAL_RANK`` 0 alone."""
    for local, said in (("0", 1), ("1", 0)):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": local, "LOCAL_RANK": local}
        done = run("visualize", "--steps", "0", env=env)
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == said, done.stderr
