"""An allocation the machine cannot make is one line, saying what to change."""

import pytest
import torch
import typer

from massif.errors import out_of_memory
from massif.terminal import run_guarded


def cpu_allocation_error() -> RuntimeError:
    try:
        torch.empty(2**50)  # 4 PB: the CPU allocator refuses it at once
    except RuntimeError as e:
        return e
    raise AssertionError("allocated 4 PB")


def test_failed_allocations_are_recognised_and_nothing_else():
    cpu = out_of_memory(cpu_allocation_error())
    assert cpu is not None and cpu.startswith("out of memory (") and "--batch-size" in cpu
    gpu = out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert gpu is not None and gpu.startswith("out of GPU memory (CUDA out of memory.")
    assert out_of_memory(RuntimeError("CUDA error: out of memory")).startswith(
        "out of GPU memory (CUDA error: out of memory)")
    assert out_of_memory(MemoryError()).startswith("out of memory (MemoryError): pass")
    assert out_of_memory(MemoryError(), "restart it").endswith("): restart it")
    assert out_of_memory(RuntimeError("shapes cannot be multiplied")) is None
    assert out_of_memory(ValueError("can't allocate memory")) is None


def test_the_cli_prints_one_line_and_exits_2(capsys):
    def work() -> None:
        torch.empty(2**50)

    with pytest.raises(typer.Exit) as done:
        run_guarded(work)
    assert done.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("massif: error: out of memory (")
    assert "MASSIF_MEMORY_BUDGET" in lines[0]
    with pytest.raises(RuntimeError, match="a bug"):  # anything else is not hidden
        run_guarded(lambda: (_ for _ in ()).throw(RuntimeError("a bug")))
