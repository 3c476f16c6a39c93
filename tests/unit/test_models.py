"""Which layers a model's graph uses, and in what order: the order the forward pass runs them,
whatever order they were registered or named in (a graph's edges join each layer to the one
listed before it)."""

import pytest
import torch
from torch import nn

import massif
from massif.errors import MassifError


class RegisteredOutOfOrder(nn.Module):
    """A small CIFAR-style net whose modules are registered in another order than they run
    (pool2 before conv2, pool1 after it), as hand-written nets often are."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc = nn.Linear(16 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def test_default_layers_follow_the_forward_pass_not_registration():
    model = massif.load_model(RegisteredOutOfOrder(), image_size=32)
    assert list(model.layers) == ["conv1", "pool1", "conv2", "pool2"]
    assert [model.layer_channels[n] for n in model.layers] == [6, 6, 16, 16]


def test_named_layers_are_put_in_forward_order():
    assert list(massif.load_model(RegisteredOutOfOrder(), image_size=32,
                                  layers="pool2,conv1,conv2").layers) == \
        ["conv1", "conv2", "pool2"]
    assert list(massif.load_model("bundled", layers="mixed4a,mixed3a").layers) == \
        ["mixed3a", "mixed4a"]


def test_one_module_under_two_names_is_refused():
    with pytest.raises(MassifError, match="layers mixed3a and inception3a are the same "
                                          r"module \(net.inception3a\); name it once"):
        massif.load_model("torchvision:googlenet", weights="none",
                          layers="mixed3a,net.inception3a")


def test_the_first_channel_count_tried_gives_the_error():
    """An RGB model fed the wrong size fails for 3 channels and, tried with 1, for the channel
    count: the message is the size's, not the 1-channel retry's."""
    with pytest.raises(MassifError) as err:
        massif.load_model(RegisteredOutOfOrder(), image_size=64)
    assert "[B, 3/1, 64, 64]" in str(err.value) and "channels" not in str(err.value).split(
        ": ", 1)[1]


def test_a_model_file_imports_its_neighbours(tmp_path):
    """``from net import Net`` in the model file works, as for ``python file.py``; the folder
    is not left on ``sys.path``."""
    import sys

    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), "
        "nn.Linear(4 * 6 * 6, 3))\n")
    (tmp_path / "factory.py").write_text("from net import Net\n\n\ndef build():\n"
                                         "    return Net()\n")
    model = massif.load_model(f"{tmp_path}/factory.py:build", image_size=8)
    assert list(model.layers) == ["0", "1"] and model.channels == 1
    assert str(tmp_path) not in sys.path


def test_named_layers_are_part_of_the_analysis_key():
    """Another layer list is another analysis (its checkpoint and saved graph are not this
    one's); the model's own layers keep the key they always had."""
    from massif.request import analysis_key

    base = {"benign": "Sneaker", "target": "Sandal", "max_images": 10}
    own = massif.AnalysisRequest(**base).resolve()
    some = massif.AnalysisRequest(layers="mixed3a,mixed4a", **base).resolve().key
    other = massif.AnalysisRequest(layers="mixed3a,mixed5a", **base).resolve().key
    assert len({own.key, some, other}) == 3
    assert own.key == analysis_key(own.model.fingerprint, own.dataset.fingerprint, own.benign,
                                   own.target, own.attack_info.model_dump(),
                                   own.params.model_dump(), "Sneaker", "Sandal")
