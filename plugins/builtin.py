"""Registration of the built-in plugins (datasets, classic strategies, backbones, generators, extractors,
executors) as lazy references: this module imports no torch, so `plugins list`, name lookups and a grid's dry run
start fast, and each plugin's module is imported when one of its plugins is created. (The strategy each generator
becomes is registered in `plugins/generative_strategies.py`.)

Factories declare the keyword parameters they take, so a wrong parameter is refused without importing their module
(`tests/test_plugins.py` checks every declaration against the real signature); the timm backbones and the
generators, which take further keywords, are read from their class when first checked.
"""

from __future__ import annotations

from benchmark import LazyFactory, Register, hookimpl
from benchmark.data.files import medmnist_info

MEDMNIST_FLAGS = tuple(flag for flag in medmnist_info() if not flag.endswith("3d"))
"""Every MedMNIST 2D dataset: each is a dataset plugin."""
IMAGEFOLDER = "imagefolder"
IMAGEFOLDER_DESCRIPTION = "Your own DICOM/PNG/JPEG images: class = sub-folder name, or a CSV of path,label"
TIMM_MODELS = ("resnet18", "resnet50", "densenet121", "efficientnet_b0", "efficientnet_b4")
RESNETS = ("resnet18", "resnet50")
MIN_INPUT_SIZE = {"densenet121": 32}
"""Smallest input side (px) each timm model runs at; unlisted models run at any size the benchmark uses."""

MODALITY = ("modality", "translate")
REBALANCING = ("policy", "ratio", "multiplier", "counts", "augment_with")
CLASSIC_STRATEGIES = {
    "none": ("NoAugmentation", (), "no augmentation: real images only (the baseline)"),
    "geometric": (
        "Geometric",
        ("modality", "flip_p", "degrees"),
        "per-sample flip and rotation as the modality allows (generic: flip, ±15°)",
    ),
    "cutmix_mixup": (
        "CutMixMixUp",
        ("cutmix_alpha", "mixup_alpha"),
        "torchvision CutMix or MixUp per batch (mixes one-hot or multi-hot targets)",
    ),
    "randaugment": (
        "RandAugment",
        (*MODALITY, "num_ops", "magnitude", "num_magnitude_bins", "interpolation"),
        "torchvision RandAugment (2 ops at magnitude 9 of 31), ops drawn per image",
    ),
    "trivialaugment": (
        "TrivialAugment",
        (*MODALITY, "num_magnitude_bins", "interpolation"),
        "torchvision TrivialAugmentWide: one op and magnitude per image",
    ),
    "augmix": (
        "AugMix",
        (*MODALITY, "severity", "mixture_width", "chain_depth", "alpha", "all_ops", "interpolation"),
        "torchvision AugMix: 3 chains of 1-3 ops mixed with Dirichlet/Beta weights, per image",
    ),
    "oversample": (
        "Oversample",
        REBALANCING,
        "real minority images repeated up to the counts `balance` would synthesise",
    ),
    "class_weighted": ("ClassWeighted", REBALANCING, "loss weights giving the label prior `balance` would give"),
}
"""name → (class in plugins.classic_strategies, its parameters, description)."""


@hookimpl
def register_datasets(register: Register) -> None:
    for flag in MEDMNIST_FLAGS:
        info = medmnist_info()[flag]
        factory = LazyFactory("plugins.medmnist_datasets:MedMNISTSource", ("flag",), {"flag": flag})
        register(flag, factory, f"MedMNIST {info['python_class']} ({info['task']})")
    parameters = ("root", "csv", "channels", "val_fraction", "test_fraction", "skip_bad")
    register(IMAGEFOLDER, LazyFactory("plugins.image_folder:ImageFolderSource", parameters), IMAGEFOLDER_DESCRIPTION)


@hookimpl
def register_strategies(register: Register) -> None:
    for name, (attr, parameters, description) in CLASSIC_STRATEGIES.items():
        register(name, LazyFactory(f"plugins.classic_strategies:{attr}", parameters), description)
    medmnistc = LazyFactory("plugins.medmnistc_augment:MedMNISTCAugment", ("corruptions_of",))
    register("medmnistc", medmnistc, "MedMNIST-C's domain-specific corruptions as augmentation (needs the extra)")


@hookimpl
def register_backbones(register: Register) -> None:
    register(
        "simple_cnn",
        LazyFactory("plugins.backbones:SimpleCNN", ("in_chans", "num_classes", "image_size", "pretrained")),
        "four Conv-BN-ReLU-MaxPool blocks (32→64→128→256) and a linear head, as in the seed paper",
    )
    for name in TIMM_MODELS:  # timm takes any further keyword: undeclared, read from timm when checked
        resized = f", inputs below {MIN_INPUT_SIZE[name]} px upsampled" if name in MIN_INPUT_SIZE else ""
        stem = ", stem='small' for MedMNIST's 28-px stem" if name in RESNETS else ""
        factory = LazyFactory("plugins.backbones:timm_backbone", keywords={"name": name})
        register(name, factory, f"timm {name}{resized}{stem}")


@hookimpl
def register_extractors(register: Register) -> None:
    register(
        "inception",
        LazyFactory("plugins.extractors:InceptionExtractor", ("weights",)),
        "FID Inception-v3 (torch-fidelity, TF 2015-12-05 weights), 2048-d, 299 px TF1.x bilinear",
    )
    register(
        "domain",
        LazyFactory(
            "plugins.extractors:DomainExtractor",
            ("images", "task", "dataset", "steps", "seed", "holdout", "progress", "weights"),
        ),
        "SimpleCNN trained on the images it is given (by default the dataset's full train split; cached), 256-d pooled",
    )


@hookimpl
def register_executors(register: Register) -> None:
    register(
        "local",
        LazyFactory("benchmark.grid.executor:LocalExecutor", ("workers", "workers_per_gpu")),
        "one cell at a time in this process, or one worker per visible GPU (-X workers=N)",
    )
    register(
        "ray",
        LazyFactory("plugins.ray_executor:RayExecutor", ("address", "cpus_per_cell", "workers_per_gpu", "max_retries")),
        "each cell a Ray task, on a local Ray instance or a cluster (-X address=...); needs medaugbench[ray]",
    )


@hookimpl
def register_generators(register: Register) -> None:
    """The generators take `spec` and their own keywords (undeclared: read from the class when first checked)."""
    register(
        "dcgan",
        LazyFactory("plugins.gan:DCGAN"),
        "DCGAN, one unconditional model per class (transposed convs, BN+ReLU, Tanh; spectral-norm D, DiffAugment, EMA)",
    )
    register(
        "cgan",
        LazyFactory("plugins.gan:GAN", keywords={"loss": "non_saturating"}),
        (
            "conditional GAN of the seed paper (Algorithm 1): z∈R^128 + one-hot label, non-saturating loss, "
            "Adam 2e-4 (0.5, 0.999); projection D with an auxiliary classifier and spectral norm, DiffAugment, "
            "EMA sampling"
        ),
    )
    wgan_gp = {"loss": "wgan_gp", "n_critic": 5, "lr": 1e-4, "betas": (0.0, 0.9), "spectral_norm": False}
    register("wgan_gp", LazyFactory("plugins.gan:GAN", keywords=wgan_gp), "conditional WGAN-GP")
    register("lsgan", LazyFactory("plugins.gan:GAN", keywords={"loss": "lsgan"}), "conditional least-squares GAN")
    register("vae", LazyFactory("plugins.vae:VAE"), "conditional VAE (conv encoder/decoder, label concatenated)")
    register(
        "ddpm",
        LazyFactory("plugins.ddpm:DDPM"),
        "class-conditional DDPM (diffusers UNet2DModel + DDPMScheduler), EMA, classifier-free guidance, "
        "DDIM/DPM-Solver++/UniPC sampling",
    )
