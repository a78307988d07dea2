"""The conformance kit for generator plugins: run it on your generator before you publish it.

    from benchmark.testing import check_generator

    check_generator(MyGenerator, hidden=16)   # the factory and any parameters it takes

`check_generator` builds the generator for a small spec (1 channel, 28 px, 2 classes; for a model that says it is
not conditional, the same spec without conditioning; a conditional model is also checked without conditioning,
as a run with `-S conditioning=false` builds it), trains it a few steps through the harness's shared loop
(`benchmark/generate/loop.py`) on small random images whose brightness depends on the class, and checks what the
benchmark relies on: finite losses, sample shape (n, C, H, W) and range [-1, 1], the loop's conditioning check, that
a conditional model's samples follow `cond`, seed determinism, and the save → load round trip. The first check that
fails raises `GeneratorCheckFailed` (an AssertionError, so pytest shows it as a failed test) naming the check, the
spec and why. A tiny model passes in a few seconds; the global RNG state is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.generate import loop as gt
from benchmark.generate.model import GenerativeModel, ImageSpec
from benchmark.train.config import GeneratorBudget
from benchmark.train.flops import isolated_rng

SPEC = ImageSpec(channels=1, image_size=28, cond_dim=2)
STEPS = 3
BATCH_SIZE = 8
IMAGES = 16
SAMPLES = 5
MIXED = [i % 2 for i in range(SAMPLES)]  # labels of the sampled conditioning rows
CPU = torch.device("cpu")
ONE_STEP = GeneratorBudget(steps=1)


class GeneratorCheckFailed(AssertionError):
    """A generator failed a check of `check_generator`; the message names the check and why."""


def check_generator(factory: Callable[..., GenerativeModel], **params: Any) -> None:
    """Check the generator `factory(spec=..., **params)` makes (see the module docstring); raises
    `GeneratorCheckFailed` at the first check that fails."""
    build = partial(factory, **params)
    with isolated_rng(CPU):
        probe = _built(build, SPEC, seed=0)
        for spec in [SPEC, SPEC.unconditional()] if probe.conditional else [SPEC.unconditional()]:
            _check_spec(build, spec)


def _check_spec(build: Callable[..., GenerativeModel], spec: ImageSpec) -> None:
    """Every check for one spec, on a model trained with seed 0 (and fresh ones for determinism)."""
    images, cond = _data(spec)
    model = _trained(build, spec, images, cond, seed=0)
    _check_samples(model, spec)
    _check_conditioning_is_checked(model, spec, images)
    if spec.cond_dim:
        _check_samples_follow_cond(model, spec)
    _check_determinism(build, spec, images, cond, model)
    _check_round_trip(build, spec, model)


@contextlib.contextmanager
def _check(name: str, spec: ImageSpec) -> Iterator[None]:
    """Run one check; an exception the generator raises becomes a failure of this check."""
    try:
        yield
    except GeneratorCheckFailed:
        raise
    except Exception as error:
        raise GeneratorCheckFailed(_message(name, spec, f"{type(error).__name__}: {error}")) from error


def _require(condition: bool, name: str, spec: ImageSpec, why: str) -> None:
    if not condition:
        raise GeneratorCheckFailed(_message(name, spec, why))


def _message(name: str, spec: ImageSpec, why: str) -> str:
    return (
        f"generator check {name!r} failed ({spec.channels} channel(s), {spec.image_size} px, "
        f"cond_dim {spec.cond_dim}): {why}"
    )


def _data(spec: ImageSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """IMAGES random uint8 images, every other one of class 1 and brighter, with one-hot rows (None: no cond)."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(IMAGES) % 2
    shape = (IMAGES, spec.channels, spec.image_size, spec.image_size)
    images = (torch.randint(0, 128, shape, generator=generator) + 128 * labels[:, None, None, None]).to(torch.uint8)
    return images, F.one_hot(labels, spec.cond_dim).float() if spec.cond_dim else None


def _rows(spec: ImageSpec, labels: list[int]) -> torch.Tensor | None:
    """One-hot conditioning rows for `labels` (None for an unconditional spec)."""
    return torch.eye(spec.cond_dim)[labels] if spec.cond_dim else None


def _built(build: Callable[..., GenerativeModel], spec: ImageSpec, seed: int) -> GenerativeModel:
    """A model for `spec`, built after seeding the global RNG as the harness does."""
    with _check("build", spec):
        torch.manual_seed(seed)
        model = build(spec=spec)
    _require(
        isinstance(model, GenerativeModel),
        "build",
        spec,
        f"the factory returned a {type(model).__name__}, not a benchmark.GenerativeModel",
    )
    return model


def _trained(
    build: Callable[..., GenerativeModel],
    spec: ImageSpec,
    images: torch.Tensor,
    cond: torch.Tensor | None,
    seed: int,
) -> GenerativeModel:
    """A fresh model trained STEPS steps through the shared loop; its losses must be finite and given every step."""
    model = _built(build, spec, seed)
    name = "training through the shared loop"
    with _check(name, spec):
        budget = GeneratorBudget(steps=STEPS)
        history = gt.fit(model, images, cond, budget, BATCH_SIZE, CPU, seed, progress=False, log_every=1)
    _require(history.failure is None, name, spec, str(history.failure))
    logged = {key: len(values) for key, values in history.losses.items()}
    _require(
        bool(logged) and set(logged.values()) == {STEPS},
        name,
        spec,
        f"training_step must return its losses by name (scalar tensors) every step; logged {logged} in {STEPS} steps",
    )
    return model


def _sampled(model: GenerativeModel, spec: ImageSpec, cond: torch.Tensor | None, seed: int, name: str) -> torch.Tensor:
    """One sample per conditioning row (SAMPLES when unconditional) through the shared loop's `sample`, with a
    generator seeded `seed`; an error is a failure of check `name`."""
    n = SAMPLES if cond is None else len(cond)
    with _check(name, spec):
        return gt.sample(model, cond, n, torch.Generator().manual_seed(seed))


def _check_samples(model: GenerativeModel, spec: ImageSpec) -> None:
    """SAMPLES images (one per conditioning row) of shape (n, C, H, W), float, finite, in [-1, 1]."""
    name = "sample shape and range"
    images = _sampled(model, spec, _rows(spec, MIXED), 0, name)
    expected = (SAMPLES, spec.channels, spec.image_size, spec.image_size)
    _require(isinstance(images, torch.Tensor), name, spec, f"sample returned a {type(images).__name__}, not a tensor")
    _require(
        tuple(images.shape) == expected, name, spec, f"sample gave shape {tuple(images.shape)}, expected {expected}"
    )
    _require(images.is_floating_point(), name, spec, f"samples must be float images, got {images.dtype}")
    _require(bool(torch.isfinite(images).all()), name, spec, "samples hold NaN or Inf")
    low, high = images.min().item(), images.max().item()
    _require(-1 <= low and high <= 1, name, spec, f"samples must lie in [-1, 1]; got [{low:.4g}, {high:.4g}]")


def _check_conditioning_is_checked(model: GenerativeModel, spec: ImageSpec, images: torch.Tensor) -> None:
    """The loop rejects `cond` that does not fit the model's spec, in training and in sampling, with a ValueError:
    none or the wrong width for a conditional model, any for an unconditional one."""
    wrong = [None, torch.zeros(len(images), spec.cond_dim + 1)] if spec.cond_dim else [torch.zeros(len(images), 2)]
    for bad in wrong:
        what = "no cond" if bad is None else f"cond of shape {tuple(bad.shape)}"
        train = partial(gt.fit, copy.deepcopy(model), images, bad, ONE_STEP, 4, CPU, 0, progress=False)
        _require_rejected(train, f"training with {what}", model, spec)
        rows = None if bad is None else bad[:2]
        _require_rejected(partial(gt.sample, model, rows, 2, torch.Generator()), f"sampling with {what}", model, spec)


def _require_rejected(run: Callable[[], object], what: str, model: GenerativeModel, spec: ImageSpec) -> None:
    """`run` must stop at the loop's conditioning check (a ValueError)."""
    name = "conditioning check"
    try:
        run()
    except ValueError:
        return
    except Exception as error:
        why = f"{what} raised {type(error).__name__} ({error}), not the loop's ValueError"
        raise GeneratorCheckFailed(_message(name, spec, why)) from error
    why = f"{what} was accepted: model.spec must say what the model conditions on (cond_dim {model.spec.cond_dim})"
    raise GeneratorCheckFailed(_message(name, spec, why))


def _check_samples_follow_cond(model: GenerativeModel, spec: ImageSpec) -> None:
    """With the same generator seed, class-0 rows and class-1 rows give different images: `sample` uses `cond`."""
    name = "samples follow cond"
    first = _sampled(model, spec, _rows(spec, [0] * SAMPLES), 0, name)
    second = _sampled(model, spec, _rows(spec, [1] * SAMPLES), 0, name)
    _require(
        not torch.equal(first, second),
        name,
        spec,
        "class 0 and class 1 gave identical samples for the same generator seed: sample ignores cond (a model that "
        "cannot condition builds itself for spec.unconditional(), so that model.conditional is False)",
    )


def _check_determinism(
    build: Callable[..., GenerativeModel],
    spec: ImageSpec,
    images: torch.Tensor,
    cond: torch.Tensor | None,
    model: GenerativeModel,
) -> None:
    """Seed 0 again gives identical weights and samples, whatever the global RNG holds when sampling; seed 1 gives
    other weights, and another generator seed other samples."""
    name = "seed determinism"
    again = _trained(build, spec, images, cond, seed=0)
    differ = _differing(model, again)
    _require(
        not differ,
        name,
        spec,
        f"two runs with seed 0 gave different weights ({', '.join(differ[:3])}): every random draw must use the "
        "`generator` argument, and nothing may depend on time or Python's/NumPy's global RNG",
    )
    rows = _rows(spec, MIXED)
    torch.manual_seed(1)
    first = _sampled(model, spec, rows, 0, name)
    torch.manual_seed(2)
    second = _sampled(again, spec, rows, 0, name)
    _require(
        torch.equal(first, second),
        name,
        spec,
        "equal weights and the same generator seed gave different samples: sample must draw from its `generator` "
        "argument, not the global RNG",
    )
    _require(
        not torch.equal(first, _sampled(model, spec, rows, 1, name)),
        name,
        spec,
        "generator seeds 0 and 1 gave identical samples: sample must draw its randomness from `generator`",
    )
    _require(
        bool(_differing(model, _trained(build, spec, images, cond, seed=1))),
        name,
        spec,
        "seeds 0 and 1 gave identical weights: initialisation or training must depend on the seed",
    )


def _differing(a: GenerativeModel, b: GenerativeModel) -> list[str]:
    """Names of the state_dict entries that differ between two models."""
    mine, theirs = a.state_dict(), b.state_dict()
    return [key for key in mine if key not in theirs or not torch.equal(mine[key], theirs[key])]


def _check_round_trip(build: Callable[..., GenerativeModel], spec: ImageSpec, model: GenerativeModel) -> None:
    """Saved by the shared loop (safetensors) and loaded into a fresh model, it samples the same images for the same
    generator seed."""
    name = "save → load round trip"
    card = {"generator": "check_generator", "generator_params": {}, "models": {"all": asdict(model.spec)}}
    with tempfile.TemporaryDirectory() as folder, _check(name, spec):
        gt.save(Path(folder) / "generator", {"all": model}, card)
        loaded = gt.load(Path(folder) / "generator", CPU, build=build)[0]["all"]
    rows = _rows(spec, MIXED)
    _require(
        torch.equal(_sampled(model, spec, rows, 0, name), _sampled(loaded, spec, rows, 0, name)),
        name,
        spec,
        "the reloaded model samples other images for the same generator seed: everything sampling depends on must be "
        "in state_dict() (parameters or persistent buffers) or follow from the factory's parameters",
    )
