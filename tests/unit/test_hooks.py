"""Hooks are temporary: nothing leaks, even after an exception; mode and flags come back."""

import pytest
import torch

from massif.errors import MassifError
from massif.hooks import ForwardStopped, frozen, mask, module_input, record, stop_after
from tests.helpers.tiny import SmallConv


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_record_returns_layer_outputs_and_removes_hooks():
    model = SmallConv()
    x = torch.rand(2, 1, 8, 8)
    with record(model, {"first": "c1", "second": "c2"}) as acts:
        model(x)
        assert hook_count(model) == 2
    assert hook_count(model) == 0
    assert torch.allclose(acts["first"], model.c1(x))
    assert acts["second"].shape == (2, 5, 4, 4)


def test_stop_after_ends_the_forward_pass_once_the_layer_has_run():
    model = SmallConv()
    x = torch.rand(2, 1, 8, 8)
    ran = []
    handle = model.c2.register_forward_hook(lambda *_: ran.append("c2"))
    with record(model, {"first": "c1"}) as acts, stop_after(model, "c1"):
        with pytest.raises(ForwardStopped):
            model(x)
    handle.remove()
    assert ran == [] and hook_count(model) == 0
    assert torch.allclose(acts["first"], model.c1(x))


def test_nothing_leaks_after_an_exception():
    model = SmallConv().train()
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"):
        with frozen(model), record(model, {"a": "c1"}), mask(model, {"c2": [0]}):
            assert not model.training
            assert not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert hook_count(model) == 0
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags


def test_module_input_keeps_the_input_and_notices_in_place_changes():
    for inplace in (False, True):
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.LeakyReLU(0.1, inplace))
        x = torch.rand(2, 1, 5, 5) - 0.5
        kept = []
        with pytest.raises(RuntimeError, match="boom"):
            with module_input(net, "1", kept):
                net(x)
                assert hook_count(net) == 1
                raise RuntimeError("boom")
        assert hook_count(net) == 0
        (t, version), = kept
        assert not t.requires_grad
        if inplace:  # the LeakyReLU changed its own input after it was kept
            assert t._version != version
            assert torch.equal(t, net(x))
        else:
            assert t._version == version
            assert torch.equal(t, net[0](x))


def test_mask_zeroes_exactly_the_given_channels():
    model = SmallConv()
    x = torch.rand(3, 1, 8, 8)
    with record(model, {"c1": "c1"}) as acts, mask(model, {"c1": [1, 3]}):
        model(x)
    out = acts["c1"]  # recorded before the mask hook changes it: the raw output
    with mask(model, {"c1": [1, 3]}):
        masked = model.c1(x)
    assert (masked[:, [1, 3]] == 0).all()
    assert torch.equal(masked[:, [0, 2]], out[:, [0, 2]])


def test_mask_can_fill_with_a_value():
    model = SmallConv()
    x = torch.rand(3, 1, 8, 8)
    fill = torch.tensor([0.0, 7.0, 0.0, 0.0])
    with mask(model, {"c1": [1]}, values={"c1": fill}):
        out = model.c1(x)
    assert (out[:, 1] == 7.0).all()


def test_mask_out_of_range_channel_is_a_clear_error():
    model = SmallConv()
    with pytest.raises(MassifError, match="4 channels"):
        with mask(model, {"c1": [9]}):
            model(torch.rand(1, 1, 8, 8))
    assert hook_count(model) == 0


def test_unknown_layer_suggests_names():
    with pytest.raises(MassifError, match="did you mean: c1"):
        with record(SmallConv(), {"x": "c11"}):
            pass


def test_frozen_gives_back_each_modules_own_mode():
    """A model holding a part in eval mode while the rest trains keeps it so (restoring the
    whole model's flag would put the part in training: dropout on, batch norm's statistics
    moving)."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    net.train()
    net[1].eval()
    with frozen(net):
        assert not net.training and not net[1].training
    assert net.training and net[0].training and not net[1].training
