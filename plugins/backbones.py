"""Built-in classifier backbones: the seed paper's small CNN and five timm models.

Every factory is `factory(in_chans, num_classes, image_size, pretrained=False, **kwargs) -> nn.Module`, and every
returned module has a `min_input_size` attribute (pixels, shorter side).

Small inputs: MedMNIST images are 28 or 64 px, far below ImageNet's 224. Measured with timm 1.0 (1 and 3 channels,
batch 2, train mode), resnet18/50 and efficientnet_b0/b4 run at 8 px and up, but densenet121 fails below 32 px: at
28 px its stem (/4) and first two transitions (/2 each) leave a 1x1 map that the third transition's 2x2 average pool
cannot reduce. Models listed in `MIN_INPUT_SIZE` are therefore wrapped in `ResizeInput`, which bilinearly upsamples
smaller batches inside `forward` (on the batch's device, so it also runs under AMP and on GPU) until the shorter side
reaches the minimum. Models not listed are returned as plain timm modules. `SimpleCNN` needs 16 px (four floor-mode
2x2 poolings) and is not resized: the benchmark's sizes are 28 and 64.

Small-input stem: timm's resnets keep the ImageNet stem (7×7 stride-2 conv + stride-2 max-pool), which leaves a
28-px image 7 px wide before layer1. MedMNIST v2's own 28-px ResNets use a 3×3 stride-1 stem without max-pool;
`stem="small"` (resnet18, resnet50) builds that. Its cost: measured with FlopCounterMode, resnet18 on one 28-px grey
image takes 0.066 GFLOP forward with the ImageNet stem and 0.91 GFLOP with the small stem (14×); a training step at
batch 64 took 0.63 s and 3.0 s on one core of this project's CPU. Presets that compare with MedMNIST's published
numbers use it.

Pretrained weights: `pretrained=True` asks timm for its ImageNet weights (Hugging Face hub, or its cache); when they
cannot be fetched, a `MedAugBenchError` says how to supply them. Offline, the hub retries for about a minute before
failing; `HF_HUB_OFFLINE=1` makes it use the cache only and fail at once. `pretrained="/path/to/weights.safetensors"`
(or `.pth`/`.bin`, read by timm with `torch.load(weights_only=True)`, which refuses arbitrary pickled objects) loads a
local file through timm's `pretrained_cfg_overlay=dict(file=...)`: timm sums the RGB stem weights for one channel
and drops the classifier when `num_classes` differs from the file's.
"""

from __future__ import annotations

import math
import os
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import MedAugBenchError
from plugins.builtin import MIN_INPUT_SIZE, RESNETS

STEMS = ("imagenet", "small")
"""`stem` values of the resnets: timm's ImageNet stem (7×7 stride 2 + max-pool), or MedMNIST's small-input stem."""

Pretrained = bool | str | os.PathLike


class SimpleCNN(nn.Module):
    """Four Conv-BN-ReLU-MaxPool blocks (32→64→128→256), global average pooling and a linear head: the seed paper's
    baseline."""

    min_input_size = 16

    def __init__(self, in_chans: int, num_classes: int, image_size: int, pretrained: Pretrained = False) -> None:
        super().__init__()
        if pretrained is not False:
            raise MedAugBenchError("simple_cnn has no pretrained weights; use pretrained=False or a timm backbone")
        layers: list[nn.Module] = []
        for width_in, width_out in zip((in_chans, 32, 64, 128), (32, 64, 128, 256)):
            layers += [
                nn.Conv2d(width_in, width_out, 3, padding=1),
                nn.BatchNorm2d(width_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class ResizeInput(nn.Module):
    """Upsamples (bilinear, aspect kept) inputs whose shorter side is below `min_size`, for models that cannot run on
    them."""

    def __init__(self, model: nn.Module, min_size: int) -> None:
        super().__init__()
        self.model = model
        self.min_input_size = min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            scale = self.min_input_size / min(height, width)
            size = (math.ceil(height * scale), math.ceil(width * scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.model(x)


def _first_line(error: Exception) -> str:
    """The first line of an error's message (hub errors run to several), for one-line user errors."""
    return next(iter(str(error).splitlines()), "no message")


def _create_timm(name: str, in_chans: int, num_classes: int, pretrained: Pretrained, **kwargs: Any) -> nn.Module:
    """`timm.create_model`, with weight-loading failures turned into errors that say how to supply the weights."""
    if pretrained is False or pretrained is True:
        try:
            return timm.create_model(name, pretrained=pretrained, in_chans=in_chans, num_classes=num_classes, **kwargs)
        except (
            OSError
        ) as error:  # hub/URL unreachable and nothing cached (OfflineModeIsEnabled, LocalEntryNotFoundError, URLError)
            raise MedAugBenchError(
                f"cannot get ImageNet weights for {name} ({type(error).__name__}: {_first_line(error)}); "
                f'pass a local file instead (pretrained="/path/to/{name}.safetensors" or .pth), '
                f"or download them once while online so that the Hugging Face hub cache holds "
                f"{timm.models.get_pretrained_cfg(name).hf_hub_id} "
                "(then HF_HUB_OFFLINE=1 uses the cache without network)"
            ) from error
    path = os.fspath(pretrained)
    if not os.path.isfile(path):
        raise MedAugBenchError(f"pretrained weights file for {name} not found: {path}")
    hint = f"the file must be a {name} state_dict saved with safetensors or torch.save (tensors only)"
    try:
        file_keys = set(timm.models.load_state_dict(path))  # read as timm reads it, to check the names below
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay=dict(file=path),
            in_chans=in_chans,
            num_classes=num_classes,
            **kwargs,
        )
    except (RuntimeError, ValueError, OSError) as error:  # wrong shapes, unsafe pickle, corrupt file
        raise MedAugBenchError(f"cannot load {name} weights from {path}: {_first_line(error)}; {hint}") from error
    if file_keys.isdisjoint(key for key, _ in model.named_parameters()):  # timm loads non-strictly: would stay random
        raise MedAugBenchError(
            f"{path} holds none of {name}'s weight names (e.g. {next(iter(sorted(file_keys)), 'none')}); {hint}"
        )
    return model


def small_input_stem(model: nn.Module) -> nn.Module:
    """Replace a timm ResNet's ImageNet stem (7×7 stride-2 conv + 3×3 stride-2 max-pool) by MedMNIST v2's 28-px stem:
    a 3×3 stride-1 conv and no max-pool, so a 28-px image reaches layer1 at 28 px instead of 7 px.

    The new conv is freshly initialised (Kaiming normal, as timm's), also when the rest is pretrained.
    """
    old = model.conv1
    model.conv1 = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def timm_backbone(
    name: str,
    in_chans: int,
    num_classes: int,
    image_size: int,
    pretrained: Pretrained = False,
    stem: str = "imagenet",
    **kwargs: Any,
) -> nn.Module:
    """A timm classifier, wrapped in `ResizeInput` when the model declares a minimum input size, so it runs at 28 px.

    `stem="small"` (resnets only) swaps in the small-input stem of `small_input_stem`.
    """
    if stem not in STEMS:
        raise MedAugBenchError(f"unknown stem {stem!r} for {name}; choose {' or '.join(STEMS)}")
    if stem == "small" and name not in RESNETS:
        raise MedAugBenchError(f"stem='small' is offered for {', '.join(RESNETS)}, not {name}; drop the stem parameter")
    model = _create_timm(name, in_chans, num_classes, pretrained, **kwargs)
    if stem == "small":
        model = small_input_stem(model)
    if name in MIN_INPUT_SIZE:
        return ResizeInput(model, MIN_INPUT_SIZE[name])
    model.min_input_size = 1
    return model
