"""The GPU path gives the CPU's answers (runs only where PyTorch sees a CUDA device)."""

import pytest
import torch

import massif
from massif.analysis.influence import accumulate_influence
from massif.hooks import record
from tests.helpers.tiny import SmallConv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture
def no_tf32():
    """cuDNN's convolutions in full float32: its TF32 ones (PyTorch's default on Ampere and
    later) round to about 5e-4."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


def test_batched_influence_on_gpu_equals_the_cpu_loop(no_tf32):
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    nodes = {"c2": [0, 2, 4]}
    results = []
    for dev in ("cpu", "cuda"):
        net = SmallConv(seed=7).eval().to(dev)
        sums = {"c2": torch.zeros(3, 4, dtype=torch.float64)}
        with record(net, {"c1": "c1", "c2": "c2"}) as acts:
            net(x.to(dev).requires_grad_(True))
            accumulate_influence(["c1", "c2"], acts, nodes, sums)
        results.append(sums["c2"])
    assert torch.allclose(results[0], results[1], rtol=1e-4, atol=1e-6)


def test_default_analysis_on_gpu_matches_cpu():
    graphs = [massif.analyze("bundled", benign="Sneaker", target="Sandal", max_images=256,
                             device=dev) for dev in ("cpu", "cuda")]
    cpu, gpu = graphs
    # cuDNN's TF32 convolutions (PyTorch's default on Ampere and later) move a few images that
    # sit on a decision boundary: allow 3% of 256
    assert cpu.metrics.attack_success_rate == pytest.approx(gpu.metrics.attack_success_rate,
                                                            abs=0.03)
    same = {n.id for n in cpu.nodes} & {n.id for n in gpu.nodes}
    assert len(same) >= 0.9 * len(cpu.nodes)
    for nid in same:
        assert cpu.node(nid).importance_target == pytest.approx(
            gpu.node(nid).importance_target, rel=1e-2, abs=1e-4)


def test_the_batch_is_sized_to_the_gpu_memory():
    from massif.memory import auto_batch_size

    model = massif.load_model("torchvision:googlenet", weights="none")
    free, _ = torch.cuda.mem_get_info()
    free += torch.cuda.memory_reserved() - torch.cuda.memory_allocated()  # cached, unused
    batch = auto_batch_size(model.module, (3, 224, 224), 8, torch.device("cuda"))
    per_image = 4 * 30 * 2**20  # about 4 × googlenet's 30 MB of leaf outputs
    assert 1 <= batch <= 1024
    assert batch <= 0.6 * free / per_image * 1.1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl needs two GPUs")
def test_two_gpus_through_nccl_write_the_one_gpu_graph(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    args = ["analyze", "--max-images", "300", "--no-pictures", "--device", "cuda"]
    massif_cli = str(Path(sys.executable).parent / "massif")
    # full float32 (no TF32 rounding) in both runs; torchrun's log folder in tmp_path
    env = {**os.environ, "NVIDIA_TF32_OVERRIDE": "0", "TMPDIR": str(tmp_path)}
    subprocess.run([massif_cli, *args, "--out", str(tmp_path / "one")], check=True,
                   capture_output=True, timeout=600, env=env)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node=2", "-m", "massif", *args, "--out", str(tmp_path / "two")],
                   check=True, capture_output=True, timeout=600, env=env)
    one = json.loads((tmp_path / "one" / "graph.json").read_text())
    two = json.loads((tmp_path / "two" / "graph.json").read_text())
    # two GPUs batch differently, and cuDNN's kernels depend on the batch: same nodes, close
    # numbers
    assert [n["id"] for n in one["nodes"]] == [n["id"] for n in two["nodes"]]
    for a, b in zip(one["nodes"], two["nodes"]):
        assert a["group"] == b["group"]
        assert a["importance_target"] == pytest.approx(b["importance_target"], rel=1e-3,
                                                       abs=1e-5)


def test_a_rank_without_a_gpu_of_its_own_is_one_line(tmp_path):
    """``LOCAL_RANK`` beyond the GPUs the process sees (more processes than GPUs): one error
    line before joining the others, not CUDA's "invalid device ordinal" traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    count = torch.cuda.device_count()
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": str(count)}
    done = subprocess.run([str(Path(sys.executable).parent / "massif"), "analyze",
                           "--max-images", "10", "--no-pictures", "--device", "cuda", "--out",
                           str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"massif: error: LOCAL_RANK is {count} but this process sees {count} GPU(s): start at "
        f"most {count} process(es) per machine (torchrun --nproc-per-node {count}); each takes "
        "the GPU its LOCAL_RANK names (a scheduler that gives each task one GPU of its own "
        "wants one process per task)"]
    assert not (tmp_path / "out").exists()


def test_dataset_examples_on_gpu_are_the_cpu_ones(no_tf32):
    """The top-k merge runs on the GPU there: the same images, the same values."""
    from massif.datasets import FashionMNIST
    from massif.pictures.examples import top_examples

    data = FashionMNIST("test")
    tops = [top_examples(massif.load_model("bundled").to(dev), data, ["mixed3a"], k=5,
                         batch_size=64, indices=range(300))["mixed3a"] for dev in ("cpu", "cuda")]
    cpu, gpu = tops
    assert gpu.values.device.type == "cpu"
    assert torch.allclose(cpu.values, gpu.values, rtol=1e-4, atol=1e-6)
    assert (cpu.images == gpu.images).float().mean() > 0.95  # near-ties may swap
