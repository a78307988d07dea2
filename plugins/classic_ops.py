"""Batched, per-image versions of torchvision.transforms.v2's auto-augment operations, for float images in [0, 1].

torchvision's RandAugment, TrivialAugmentWide and AugMix draw one operation and one magnitude for a whole tensor
and take their draws from the global RNG. Here every image of a batch draws its own operation, magnitude bin and
sign from a passed generator (`draw_layer`), and `apply_layer` applies each operation once to the group of images
that drew it, with per-image magnitudes: the five affine operations of all groups share one sampling grid (an
einsum; `affine_grid`'s bmm is ~15x slower on a CPU at 28 px) and one `grid_sample` call. The op spaces and
magnitude bins are torchvision 0.29's (`RANDAUGMENT`, `TRIVIALAUGMENT`, `AUGMIX`), written out here so that a
torchvision upgrade cannot silently change a benchmark's augmentation.

Deviations from torchvision, which expects uint8 tensors for these transforms:
- Images stay float between operations. Posterize, solarize, autocontrast and equalize, whose bits and thresholds
  torchvision defines on the 0-255 scale, act on the 0-255 image as torchvision's `to_dtype` makes it (autocontrast
  and equalize through torchvision's uint8 kernels, posterize and solarize by the same integer arithmetic in float),
  so they equal torchvision on the uint8 image; torchvision's float posterize (k / 2^bits levels) is not used. The
  other operations equal torchvision's float kernels, so a chain is not re-quantised to 256 levels after each step
  as it would be on uint8 input.
- Each image draws its own operations, bins and signs (torchvision: one draw per call), and AugMix draws each
  chain's depth per image; all from the passed generator, never the global RNG.
- The operations are listed in one order for all three spaces (identity, affine, uint8-defined, enhance), not in
  torchvision's dict order; the choice is uniform, so only which id means which operation differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

MagnitudeBins = Callable[[int, int, int], torch.Tensor]
INTERPOLATIONS = ("nearest", "bilinear")
AUGMIX_BINS = 10  # AugMix's _PARAMETER_MAX: its magnitude bins, of which `severity` are drawn from


@dataclass(frozen=True)
class Op:
    """One operation of a space: torchvision's name, its magnitude bins (num_bins, height, width) and their sign."""

    name: str
    bins: MagnitudeBins | None = None  # None: the operation takes no magnitude
    signed: bool = False  # each image negates the magnitude with probability 1/2


def _span(top: float) -> MagnitudeBins:
    return lambda num_bins, height, width: torch.linspace(0.0, top, num_bins)


def _posterize_bits(top: int, spread: int) -> MagnitudeBins:
    return lambda num_bins, height, width: (top - torch.arange(num_bins) / ((num_bins - 1) / spread)).round()


def _solarize_thresholds(num_bins: int, height: int, width: int) -> torch.Tensor:
    return torch.linspace(1.0, 0.0, num_bins)


def _fraction(share: float) -> MagnitudeBins:
    """Shifts up to `share` of the side they move along (TranslateX: the width; both are equal for square images)."""
    return lambda num_bins, height, width: torch.linspace(0.0, share * width, num_bins)


@dataclass(frozen=True)
class SpaceMaxima:
    """A torchvision op space by its maxima: shear, translation as a fraction of the side, rotation in degrees,
    enhance factor, posterize (top bits, spread) and whether it has the identity."""

    shear: float
    translate: float
    rotate: float
    enhance: float
    posterize: tuple[int, int]
    identity: bool


# torchvision 0.29's maxima, except TrivialAugmentWide's translation: torchvision shifts up to 32 px whatever the
# size (its CIFAR setting), which moves a 28-px image entirely out of the frame; here it is 32/224 of the side, what
# 32 px is on the 224-px ImageNet images the wide space was also defined for (4 px at 28 px, 9 at 64).
MAXIMA = {
    "randaugment": SpaceMaxima(0.3, 150.0 / 331.0, 30.0, 0.9, (8, 4), identity=True),
    "trivialaugment": SpaceMaxima(0.99, 32.0 / 224.0, 135.0, 0.99, (8, 6), identity=True),
    "augmix": SpaceMaxima(0.3, 1.0 / 3.0, 30.0, 0.9, (4, 4), identity=False),
}


@lru_cache(maxsize=64)
def op_space(kind: str, translate: float | None = None, max_rotation: float | None = None) -> tuple[Op, ...]:
    """The op space of `kind` (a key of MAXIMA) with shifts up to `translate` of the side (None: the space's own)
    and rotations up to min(the space's, `max_rotation`) degrees; cached, so one set of arguments is one space."""
    top = MAXIMA[kind]
    share = top.translate if translate is None else translate
    rotate = top.rotate if max_rotation is None else min(top.rotate, max_rotation)
    return (
        *((Op("Identity"),) if top.identity else ()),
        Op("ShearX", _span(top.shear), True),
        Op("ShearY", _span(top.shear), True),
        Op("TranslateX", _fraction(share), True),
        Op("TranslateY", _fraction(share), True),
        Op("Rotate", _span(rotate), True),
        Op("Posterize", _posterize_bits(*top.posterize)),
        Op("Solarize", _solarize_thresholds),
        Op("AutoContrast"),
        Op("Equalize"),
        *(Op(name, _span(top.enhance), True) for name in ("Brightness", "Color", "Contrast", "Sharpness")),
    )


RANDAUGMENT = op_space("randaugment")
TRIVIALAUGMENT = op_space("trivialaugment")
AUGMIX = op_space("augmix")
ENHANCE_OPS = 4  # the last four ops of a space: brightness, color, contrast, sharpness (AugMix's all_ops)


@dataclass(frozen=True)
class Modality:
    """What geometric change keeps an image's label in one imaging modality: mirroring left-right, and rotations up
    to `max_rotation` degrees (a cap on the auto-augment spaces' rotations; `geometric`'s default degrees)."""

    name: str
    flips: bool
    max_rotation: float
    why: str


MODALITIES = {
    m.name: m
    for m in (
        Modality(
            "chest_xray",
            False,
            10.0,
            "radiographs have a laterality (heart on the left) and are taken upright: a mirror image is another "
            "anatomy, a large rotation a view no radiograph shows",
        ),
        Modality(
            "ultrasound",
            True,
            10.0,
            "the probe is at the top and depth runs down (shadows fall below a lesion); left-right is arbitrary",
        ),
        Modality("fundus", True, 180.0, "a mirrored left eye is a right eye of the same grade; the field is round"),
        Modality("dermatoscopy", True, 180.0, "a skin lesion seen from above has no canonical orientation"),
        Modality("generic", True, 180.0, "torchvision's defaults, unchanged"),
    )
}
DATASET_MODALITIES = {
    "pneumoniamnist": "chest_xray",
    "chestmnist": "chest_xray",
    "breastmnist": "ultrasound",
    "retinamnist": "fundus",
    "dermamnist": "dermatoscopy",
}


def modality_of(dataset: str) -> Modality:
    """The modality of a dataset by name (DATASET_MODALITIES); any other dataset is `generic`."""
    return MODALITIES[DATASET_MODALITIES.get(dataset, "generic")]


@lru_cache(maxsize=64)
def magnitude_table(space: tuple[Op, ...], num_bins: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ops, bins) float64 magnitudes (zero for ops without one), as torchvision's float32 bins, and (ops,) signs."""
    rows = [op.bins(num_bins, height, width).float() if op.bins else torch.zeros(num_bins) for op in space]
    return torch.stack(rows).double(), torch.tensor([op.signed for op in space])


def draw_layer(
    space: tuple[Op, ...], num_bins: int, levels: tuple[int, int], shape: torch.Size, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image of an (N, C, H, W) batch: an op id, a magnitude bin in [levels[0], levels[1]) and a sign, all drawn
    from `generator` on its device. Returns op ids (N,) and signed float64 magnitudes (N,)."""
    n, device = shape[0], generator.device
    table, signed = (t.to(device) for t in magnitude_table(space, num_bins, shape[-2], shape[-1]))
    ops = torch.randint(len(space), (n,), generator=generator, device=device)
    bins = torch.randint(levels[0], levels[1], (n,), generator=generator, device=device)
    negate = (torch.rand(n, generator=generator, device=device) <= 0.5) & signed[ops]
    magnitude = table[ops, bins]
    return ops, torch.where(negate, -magnitude, magnitude)


def apply_layer(
    images: torch.Tensor, space: tuple[Op, ...], ops: torch.Tensor, magnitudes: torch.Tensor, interpolation: str
) -> torch.Tensor:
    """Image i gets operation `space[ops[i]]` at `magnitudes[i]` (an id < 0 leaves it as it is)."""
    ops, magnitudes = ops.to(images.device), magnitudes.to(images.device)
    ids = ops.cpu()
    groups = {int(k): torch.nonzero(ops == k).squeeze(1) for k in ids.unique().tolist() if k >= 0}
    out = images.clone()
    warped = [k for k in groups if space[k].name in AFFINE]
    if warped:
        index = torch.cat([groups[k] for k in warped])
        height, width = images.shape[-2:]
        matrices = torch.cat([AFFINE[space[k].name](magnitudes[groups[k]], height, width) for k in warped])
        out[index] = warp(images[index], matrices, interpolation)
    for k, index in groups.items():
        if space[k].name in POINTWISE:
            out[index] = POINTWISE[space[k].name](images[index], magnitudes[index])
    return out


def dirichlet(alpha: float, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, k) rows drawn from Dirichlet(alpha, ..., alpha) on the generator's device (k = 2: column 0 ~ Beta(alpha,
    alpha)); the sampler torchvision's AugMix uses, given the generator since torch.distributions takes none."""
    return torch._sample_dirichlet(torch.full((n, k), float(alpha), device=generator.device), generator=generator)


# Affine operations: (N,) magnitudes -> (N, 2, 3) float64 matrices mapping output to input pixel coordinates
# (origin at the image centre), as torchvision's `_get_inverse_affine_matrix` builds them for these ops.


def _matrices(rows: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    def column(value: torch.Tensor | float) -> torch.Tensor:
        return value if isinstance(value, torch.Tensor) else torch.full_like(like, value)

    return torch.stack([torch.stack([column(v) for v in row], dim=1) for row in rows], dim=1)


def shear_x(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Shear about the top-left corner (torchvision's center=[0, 0]) by the angle atan(m)."""
    return _matrices([[1.0, m, m * height / 2], [0.0, 1.0, 0.0]], m)


def shear_y(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return _matrices([[1.0, 0.0, 0.0], [m, 1.0, m * width / 2]], m)


def translate_x(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Shift right by int(m) pixels (torchvision truncates the magnitude)."""
    return _matrices([[1.0, 0.0, -m.trunc()], [0.0, 1.0, 0.0]], m)


def translate_y(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return _matrices([[1.0, 0.0, 0.0], [0.0, 1.0, -m.trunc()]], m)


def rotate(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Rotate counter-clockwise by m degrees about the centre."""
    cos, sin = torch.cos(torch.deg2rad(m)), torch.sin(torch.deg2rad(m))
    return _matrices([[cos, -sin, 0.0], [sin, cos, 0.0]], m)


def warp(images: torch.Tensor, matrices: torch.Tensor, interpolation: str) -> torch.Tensor:
    """Resample each image through its pixel-space matrix with zero fill, as torchvision's affine/rotate do (its
    `_affine_grid`: pixel-centre coordinates through the matrix, then normalised; one einsum for the batch)."""
    n, _, height, width = images.shape
    xs = torch.linspace((1 - width) / 2, (width - 1) / 2, width, dtype=images.dtype, device=images.device)
    ys = torch.linspace((1 - height) / 2, (height - 1) / 2, height, dtype=images.dtype, device=images.device)
    base = torch.stack(
        [xs.expand(height, width), ys.view(-1, 1).expand(height, width), xs.new_ones(height, width)], dim=-1
    ).view(-1, 3)
    half = images.new_tensor([width / 2, height / 2]).view(1, 2, 1)
    grid = torch.einsum("pk,njk->npj", base, matrices.to(images.dtype) / half).view(n, height, width, 2)
    return F.grid_sample(images, grid, mode=interpolation, padding_mode="zeros", align_corners=False)


AFFINE = {"ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x, "TranslateY": translate_y, "Rotate": rotate}


# Point-wise operations: (N, C, H, W) images and (N,) float64 magnitudes -> images.


def _factor(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (1.0 + m).to(images.dtype).view(-1, 1, 1, 1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * factor + other * (1.0 - factor)).clamp(0.0, 1.0)


def _grey(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def brightness(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(images, torch.zeros_like(images), _factor(images, m))


def color(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Saturation; a grey image is returned as it is (as torchvision and PIL do)."""
    return images if images.shape[1] == 1 else _blend(images, _grey(images), _factor(images, m))


def contrast(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(images, _grey(images).mean(dim=(1, 2, 3), keepdim=True), _factor(images, m))


def sharpness(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with torchvision's 3x3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13) of the interior; the one-pixel border is
    kept. The box sum is taken with shifted slices, faster than a depthwise conv at these sizes."""
    height, width = images.shape[-2:]
    if height <= 2 or width <= 2:
        return images
    rows = images[..., :-2, :] + images[..., 1:-1, :] + images[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    interior = images[..., 1:-1, 1:-1]
    out = images.clone()
    out[..., 1:-1, 1:-1] = _blend(interior, (box + 4.0 * interior) / 13.0, _factor(images, m))
    return out


def _to_255(images: torch.Tensor) -> torch.Tensor:
    """The 0-255 values torchvision's `to_dtype(..., uint8, scale=True)` gives (x * 255.999, truncated), as floats."""
    return images.mul(255.999).floor_()


def _from_255(values: torch.Tensor) -> torch.Tensor:
    """Back to [0, 1] as torchvision's `to_dtype(..., float, scale=True)` does (multiplying by 1/255)."""
    return values.mul_(1.0 / 255)


def _on_uint8(images: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a torchvision uint8 kernel to the 0-255 image (torchvision's conversions both ways)."""
    return TF.to_dtype(op(TF.to_dtype(images, torch.uint8, scale=True)), images.dtype, scale=True)


def posterize(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Keep the top m bits of each 8-bit value (torchvision's uint8 mask; m = 0 gives black), computed in float."""
    step = (2.0 ** (8 - m)).to(images.dtype).view(-1, 1, 1, 1)
    return _from_255(_to_255(images).div_(step).floor_().mul_(step))


def solarize(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Invert the 8-bit values at or above 255 * m (a float32 threshold, as torchvision's uint8 comparison makes it)."""
    values = _to_255(images)
    threshold = (255.0 * m).float().view(-1, 1, 1, 1)
    return _from_255(torch.where(values >= threshold, 255.0 - values, values))


def autocontrast(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _on_uint8(images, TF.autocontrast)


def equalize(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _on_uint8(images, TF.equalize)


POINTWISE = {
    "Brightness": brightness,
    "Color": color,
    "Contrast": contrast,
    "Sharpness": sharpness,
    "Posterize": posterize,
    "Solarize": solarize,
    "AutoContrast": autocontrast,
    "Equalize": equalize,
}
