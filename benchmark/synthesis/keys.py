"""Typed keys of the models a generative strategy trains: one conditional model of all classes, or one model per
class (per label for multi-label data). Cards name each model by its class name; cards written before this name
per-class models `group_N` and are still read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from benchmark.errors import MedAugBenchError

ALL_NAME = "all"
OLD_PREFIX = "group_"  # how cards written before class names named per-class models

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class ModelKey:
    """Which images a model generates: `group` None for the one conditional model of every class, else the index
    (as in `task.labels`) of the class or label it alone generates."""

    group: int | None = None

    @property
    def is_all(self) -> bool:
        return self.group is None

    def name(self, labels: tuple[str, ...] | list[str]) -> str:
        """The model's name in cards, progress bars and sample grids: the class name, or "all"."""
        return ALL_NAME if self.group is None else labels[self.group]

    @classmethod
    def parse(cls, name: str, labels: tuple[str, ...] | list[str]) -> ModelKey:
        """The key a card's model name stands for: "all", a class name, or an old card's `group_N`."""
        if name == ALL_NAME:
            return cls(None)
        if name in labels:
            return cls(list(labels).index(name))
        index = name.removeprefix(OLD_PREFIX)
        if name.startswith(OLD_PREFIX) and index.isdigit() and int(index) < len(labels):
            return cls(int(index))
        raise MedAugBenchError(
            f"a generator card names a model {name!r}, which is neither 'all' nor a class of this dataset "
            f"({', '.join(labels)}); it was trained for another dataset: train it again"
        )


ALL = ModelKey(None)


def keyed(named: Mapping[str, T] | Mapping[ModelKey, T], labels: tuple[str, ...] | list[str]) -> dict[ModelKey, T]:
    """A card's per-model mapping (by name) keyed by ModelKey; one already keyed so is returned as it is."""
    return {key if isinstance(key, ModelKey) else ModelKey.parse(key, labels): value for key, value in named.items()}
