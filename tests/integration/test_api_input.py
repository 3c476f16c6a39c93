"""The public Python API refuses bad arguments with one ``MassifError`` that says what is
wrong, not a ``TypeError`` or ``AttributeError`` from deep inside (what a notebook user
would otherwise have to read a traceback for), and never quietly does something else."""

from __future__ import annotations

import os

import pytest
import torch

import massif
from massif.server.listen import bind


@pytest.fixture(scope="module")
def graph():
    model = massif.load_model("bundled")
    data = massif.load_dataset("fashion-mnist", 28, 1)
    return massif.analyze(model, data, benign="Sneaker", target="Sandal", max_images=20,
                          device="cpu", batch_size=20)


OK = {"benign": "Sneaker", "target": "Sandal"}

REQUESTS = {  # AnalysisRequest fields, checked before anything loads
    "benign-none": ({"benign": None, "target": "Sandal"}, "benign class"),
    "targeted-no": ({**OK, "targeted": "no"}, "targeted must be True or False"),
    "strengths-number": ({**OK, "strengths": 5}, "strengths must be a list"),
    "strengths-0-d-tensor": ({**OK, "strengths": torch.tensor(3.5)}, "not Tensor of one value"),
    "strengths-words": ({**OK, "strengths": "0,x"}, "strengths must be numbers"),
    "strengths-none-inside": ({**OK, "strengths": [0, None]}, "strengths must be numbers"),
    "strengths-bool": ({**OK, "strengths": [0, True]}, "strengths must be numbers"),
    "layers-number": ({**OK, "layers": 5}, "layers must be a list"),
    "layers-numbers": ({**OK, "layers": [1, 2]}, "layers must be layer names"),
    "class-index-fd": ({**OK, "class_index": 3}, "class_index must be a file path"),
    "weights-number": ({**OK, "weights": 123}, "weights must be a file path"),
}


@pytest.mark.parametrize("fields, words", REQUESTS.values(), ids=REQUESTS)
def test_a_bad_request_field_is_one_clear_error(fields, words):
    with pytest.raises(massif.MassifError, match=words):
        massif.AnalysisRequest(**fields)


def test_strengths_as_a_string_a_tensor_or_a_generator_are_numbers():
    for given in ("0, 1, 2.5", torch.tensor([0, 1, 2.5]), (v for v in (0, 1, 2.5))):
        assert massif.AnalysisRequest(**OK, strengths=given).strengths == (0.0, 1.0, 2.5)
    assert massif.AnalysisRequest(**OK, layers={"mixed3a": 1}.keys()).layers == ("mixed3a",)


def test_class_index_as_a_number_never_reads_a_file_descriptor(tmp_path):
    """``open(3)`` would read, and close, whatever file descriptor 3 is."""
    with open(tmp_path / "f", "w") as f:
        fd = f.fileno()
        with pytest.raises(massif.MassifError, match="file path"):
            massif.AnalysisRequest(**OK, class_index=fd)
        os.fstat(fd)  # still open


ATTACKS = {
    "name-none": ((None,), {}, "named by a string"),
    "name-number": ((3,), {}, "named by a string"),
    "steps-none": (("pgd",), {"steps": None}, "steps must be an integer"),
    "steps-word": (("pgd",), {"steps": "x"}, "steps must be an integer"),
    "unknown-option": (("fgm",), {"foo": 1}, "unknown attack option 'foo'"),
    "targeted-no": (("fgm",), {"targeted": "no"}, "True or False"),
    "step-ratio-nan": (("pgd",), {"step_ratio": float("nan")}, "step_ratio"),
}


@pytest.mark.parametrize("args, kwargs, words", ATTACKS.values(), ids=ATTACKS)
def test_a_bad_attack_is_one_clear_error(args, kwargs, words):
    with pytest.raises(massif.MassifError, match=words):
        massif.make_attack(*args, **kwargs)


def test_models_and_datasets_refuse_what_they_cannot_be(tmp_path):
    with pytest.raises(massif.MassifError, match="missing.pt"):  # a Path is a path
        massif.load_model("torchvision:resnet18", weights=tmp_path / "missing.pt")
    with pytest.raises(massif.MassifError, match="not int"):
        massif.load_model(123)
    with pytest.raises(massif.MassifError, match="weights must be"):
        massif.load_model("bundled", weights=123)
    with pytest.raises(massif.MassifError, match="not NoneType"):
        massif.load_dataset(None)
    model = massif.load_model("bundled")
    for device in ("tpu", "nonsense", torch.float64):
        with pytest.raises(massif.MassifError, match="use auto, cpu, cuda") as err:
            model.to(device)
        assert "\n" not in str(err.value)
    if not torch.cuda.is_available():
        with pytest.raises(massif.MassifError, match="no CUDA GPU"):
            model.to("cuda")
    assert model.device == torch.device("cpu")


TENSORS = {
    "empty": ((torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long), ["a"]), "N ≥ 1"),
    "float-labels": ((torch.zeros(2, 1, 4, 4), torch.tensor([0.5, 1.2]), ["a", "b"]),
                     "one integer per image"),
    "2-d-labels": ((torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, dtype=torch.long), ["a"]),
                   "one integer per image"),
    "string-labels": ((torch.zeros(2, 1, 4, 4), ["a", "b"], ["a", "b"]), "tensors"),
    "no-class-names": ((torch.zeros(2, 1, 4, 4), [0, 1], None), "class_names"),
    "images-none": ((None, [0], ["a"]), "tensors"),
}


@pytest.mark.parametrize("args, words", TENSORS.values(), ids=TENSORS)
def test_tensor_dataset_checks_what_it_is_given(args, words):
    with pytest.raises(massif.MassifError, match=words):
        massif.TensorDataset(*args)


def test_images_with_the_wrong_channel_count_are_named_before_any_pass():
    data = massif.TensorDataset(torch.rand(4, 3, 28, 28), [7, 7, 5, 5],
                                [str(i) for i in range(10)])
    with pytest.raises(massif.MassifError, match="3 channel.*takes 1"):
        massif.analyze("bundled", data, benign=7, target=5, device="cpu")


def test_graphs_files_and_comparisons_refuse_wrong_types(graph, tmp_path):
    with pytest.raises(massif.MassifError, match="file path, not int"):
        massif.Graph.load(5)
    with pytest.raises(massif.MassifError, match="file path, not int"):
        graph.save(5)
    with pytest.raises(massif.MassifError, match="is a folder"):
        graph.save(tmp_path)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(massif.MassifError, match="cannot read graph"):
        massif.Graph.load(tmp_path / "deep.json")
    with pytest.raises(massif.MassifError, match="b must be a Graph"):
        massif.compare(graph, "x")
    with pytest.raises(massif.MassifError, match="strength_a must be a number"):
        massif.compare(graph, graph, "1.5")
    with pytest.raises(massif.MassifError, match="file path"):
        massif.show(5, browser=False)
    with pytest.raises(massif.MassifError, match="out must be a file path"):
        massif.show(graph, out=5, browser=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json"]


def test_a_resume_folder_or_a_cache_that_is_a_file_is_refused(tmp_path):
    from massif.server import create_app

    (tmp_path / "file").write_text("x")
    with pytest.raises(massif.MassifError, match="resume_dir .* is a file"):
        massif.analyze("bundled", benign="Sneaker", target="Sandal", max_images=4,
                       device="cpu", resume_dir=tmp_path / "file")
    with pytest.raises(massif.MassifError, match="cache .* is a file"):
        create_app(tmp_path / "ws", "bundled", cache=tmp_path / "file", pictures=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("port", [70000, -1, True, "80"])
def test_bind_refuses_what_is_no_port(port):
    with pytest.raises(massif.MassifError, match="not a port number"):
        bind("127.0.0.1", port)
