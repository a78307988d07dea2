"""Backbone plugins: every registered backbone trains at the benchmark's sizes; pretrained weights load or fail
clearly."""

from __future__ import annotations

import time

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from torch import nn

from benchmark.errors import MedAugBenchError
from benchmark.registry import create, entries

BACKBONES = ("simple_cnn", "resnet18", "resnet50", "densenet121", "efficientnet_b0", "efficientnet_b4")


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(module for module in model.modules() if isinstance(module, nn.Conv2d))


def test_all_backbones_are_registered() -> None:
    assert set(BACKBONES) <= set(entries("backbone"))


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_at_28_and_64_px(name: str, in_chans: int) -> None:
    model = create("backbone", name, in_chans=in_chans, num_classes=5, image_size=28).train()
    assert isinstance(model.min_input_size, int) and model.min_input_size >= 1
    conv = first_conv(model)
    assert conv.in_channels == in_chans
    for size in (28, 64):
        model.zero_grad(set_to_none=True)
        logits = model(torch.randn(2, in_chans, size, size))
        assert logits.shape == (2, 5)
        logits.logsumexp(1).sum().backward()
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_densenet121_declares_min_size_and_upsamples_small_inputs() -> None:
    model = create("backbone", "densenet121", in_chans=1, num_classes=3, image_size=28).eval()
    assert model.min_input_size == 32
    seen: list[tuple[int, ...]] = []
    first_conv(model).register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)
        model(torch.randn(2, 1, 64, 64))
    assert seen == [(2, 1, 32, 32), (2, 1, 64, 64)]
    with pytest.raises(RuntimeError, match="too small"):  # why the wrapper exists: bare densenet121 fails at 28 px
        timm.create_model("densenet121", in_chans=1, num_classes=3).eval()(torch.randn(2, 1, 28, 28))


def test_pretrained_from_local_safetensors_adapts_stem_and_drops_classifier(tmp_path) -> None:
    source = timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=1000)
    saved = {key: value.clone() for key, value in source.state_dict().items()}
    path = tmp_path / "resnet18.safetensors"
    safetensors.torch.save_file(saved, str(path))

    model = create("backbone", "resnet18", in_chans=1, num_classes=2, image_size=28, pretrained=str(path))
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["conv1.weight"], saved["conv1.weight"].sum(dim=1, keepdim=True))
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.weight", "layer4.1.bn2.running_var"):
        torch.testing.assert_close(loaded[key], saved[key])
    assert model.fc.out_features == 2 and loaded["fc.weight"].shape == (2, 512)


def test_pretrained_from_local_pth_loads_all_but_classifier(tmp_path) -> None:
    source = timm.create_model("efficientnet_b0", pretrained=False, in_chans=3, num_classes=1000)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = create("backbone", "efficientnet_b0", in_chans=3, num_classes=4, image_size=28, pretrained=path)
    loaded = model.state_dict()
    assert loaded["classifier.weight"].shape == (4, 1280)
    for key, value in source.state_dict().items():
        if not key.startswith("classifier."):
            torch.testing.assert_close(loaded[key], value)


class Payload:
    """A non-tensor object in a checkpoint: loading must refuse to unpickle it."""

    unpickled = False

    def __setstate__(self, state: dict) -> None:
        Payload.unpickled = True


def test_pretrained_pth_with_pickled_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "payload": Payload()}, path)
    with pytest.raises(MedAugBenchError, match="evil.pth"):
        create("backbone", "resnet18", in_chans=3, num_classes=2, image_size=28, pretrained=str(path))
    assert not Payload.unpickled


def test_pretrained_file_with_foreign_names_is_refused(tmp_path) -> None:
    source = timm.create_model("resnet18", pretrained=False, num_classes=2)
    path = tmp_path / "wrapped.safetensors"
    safetensors.torch.save_file({f"model.{key}": value for key, value in source.state_dict().items()}, str(path))
    with pytest.raises(MedAugBenchError, match="none of resnet18's weight names"):
        create("backbone", "resnet18", in_chans=3, num_classes=2, image_size=28, pretrained=str(path))


def test_pretrained_missing_file_names_the_path(tmp_path) -> None:
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(MedAugBenchError, match="nowhere.safetensors"):
        create("backbone", "resnet50", in_chans=3, num_classes=2, image_size=28, pretrained=str(missing))


def test_pretrained_true_offline_fails_fast_with_local_file_hint(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import; patch the live value
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache on every machine
    start = time.monotonic()
    with pytest.raises(MedAugBenchError, match=r'pretrained="/path/to/resnet18\.safetensors"'):
        create("backbone", "resnet18", in_chans=3, num_classes=2, image_size=28, pretrained=True)
    assert time.monotonic() - start < 10


def test_simple_cnn_has_no_pretrained_weights() -> None:
    with pytest.raises(MedAugBenchError, match="no pretrained weights"):
        create("backbone", "simple_cnn", in_chans=1, num_classes=2, image_size=28, pretrained=True)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_small_input_stem_keeps_28_px_resolution_into_layer1(name: str) -> None:
    """MedMNIST v2's 28-px ResNet: 3×3 stride-1 stem, no max-pool; timm's ImageNet stem leaves 7 px after the stem."""
    sizes = {}
    for stem in ("imagenet", "small"):
        model = create("backbone", name, in_chans=1, num_classes=2, image_size=28, stem=stem).eval()
        seen = []
        model.layer1.register_forward_hook(
            lambda module, inputs, output, seen=seen: seen.append(tuple(inputs[0].shape[-2:]))
        )
        with torch.no_grad():
            assert model(torch.randn(2, 1, 28, 28)).shape == (2, 2)
        sizes[stem] = seen[0]
    assert sizes == {"imagenet": (7, 7), "small": (28, 28)}
    small = create("backbone", name, in_chans=3, num_classes=2, image_size=28, stem="small")
    assert (small.conv1.kernel_size, small.conv1.stride, small.conv1.in_channels) == ((3, 3), (1, 1), 3)
    assert isinstance(small.maxpool, nn.Identity)


def test_small_stem_is_refused_where_it_is_not_offered() -> None:
    with pytest.raises(MedAugBenchError, match="stem='small' is offered for resnet18, resnet50"):
        create("backbone", "densenet121", in_chans=1, num_classes=2, image_size=28, stem="small")
    with pytest.raises(MedAugBenchError, match="unknown stem 'tiny'"):
        create("backbone", "resnet18", in_chans=1, num_classes=2, image_size=28, stem="tiny")
