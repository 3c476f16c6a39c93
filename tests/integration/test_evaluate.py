"""``massif evaluate`` on the bundled model: the real console script gives the Python API's
curves and writes them; bad input is one ``massif: error:`` line with nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import massif
from massif.cli import app as cli_app
from massif.edit import Curves
from tests.helpers.cli import run_massif as run

ARGS = ["--max-images", "12", "--ks", "1", "--rankings",
        "vulnerability,gradient-x-activation,random"]


@pytest.fixture(scope="module")
def run_folder(bundled, tmp_path_factory):
    """A small analysis of the default pair, saved as ``massif analyze --out`` saves it."""
    folder = tmp_path_factory.mktemp("run")
    graph = massif.analyze(bundled, benign="Sneaker", target="Sandal", max_images=24,
                           device="cpu")
    graph.save(folder / "graph.json")
    return folder


def test_evaluate_prints_and_writes_the_python_api_curves(run_folder, tmp_path):
    proc = run("evaluate", str(run_folder), *ARGS, "--json", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = Curves.model_validate_json(proc.stdout)
    saved = Curves.model_validate_json((tmp_path / "out" / "curves.json").read_text())
    assert saved == got
    assert (tmp_path / "out" / "curves.svg").read_text().startswith("<svg")
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [c.ranking for c in got.curves] == ["vulnerability", "gradient-x-activation",
                                               "random"]
    assert got.n_images == 12 and got.ks == [1] and got.random_draws == 10
    graph = massif.Graph.load(run_folder / "graph.json")
    editor = massif.Editor.from_graph("bundled", None, graph, max_images=12, device="cpu",
                                      sample_size=0)
    expected = editor.curves(graph, [1], "vulnerability,gradient-x-activation,random")
    assert got.model_dump(exclude={"seconds"}) == expected.model_dump(exclude={"seconds"})
    # the table, written beside the graph by default
    table = run("evaluate", str(run_folder / "graph.json"), "--max-images", "12", "--ks", "1",
                "--rankings", "vulnerability")
    assert table.returncode == 0, table.stderr[-2000:]
    assert "AUC(cost)" in table.stdout and "vulnerability" in table.stdout
    assert json.loads((run_folder / "curves.json").read_text())["format"] == "massif-curves"


@pytest.mark.parametrize("extra, needle", [
    (["--ks", "1,100000"], "k = 100000 is more than the"),
    (["--ks", "0"], "each size k must be"),
    (["--rankings", ""], "the rankings are empty"),
    (["--rankings", "vulnerability,summit"], "unknown ranking 'summit'"),
    (["--draws", "2"], "draws must be 10"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_folder, tmp_path, extra, needle):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app, ["evaluate", str(run_folder), "--max-images", "5",
                                          "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("massif: error: ") and needle in lines[0]
    assert not out.exists()


def test_a_run_without_target_images_is_refused(bundled, tmp_path):
    """An analysis of an image folder that holds Sneakers only: evaluating it says why not."""
    from PIL import Image

    from massif.datasets import FashionMNIST

    data = FashionMNIST("test")
    sneakers = [i for i, y in enumerate(data.labels.tolist()) if y == 7][:6]
    (tmp_path / "data" / "Sneaker").mkdir(parents=True)
    for i in sneakers:
        img = (data.load([i])[0, 0] * 255).round().byte().numpy()
        Image.fromarray(img).save(tmp_path / "data" / "Sneaker" / f"{i}.png")
    graph = massif.analyze(bundled, str(tmp_path / "data"), benign="Sneaker", target="Sandal",
                           device="cpu")
    (tmp_path / "run").mkdir()
    graph.save(tmp_path / "run" / "graph.json")
    result = CliRunner().invoke(cli_app, ["evaluate", str(tmp_path / "run"),
                                          "--data", str(tmp_path / "data")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("massif: error: the dataset has no images of the target "
                                    "class 'Sandal'")
    assert not (tmp_path / "run" / "curves.json").exists()
