"""Index sampling shared by the classifier and generator loops: batches by index, on the device, seeded; and the
named random streams a seed splits into, so that one kind of draw never shifts another."""

from __future__ import annotations

import numpy as np
import torch

STREAMS = ("init", "real_order", "synthetic_order", "augment")
"""The classifier's random streams, each derived from (seed, name): its initial weights, the order of the real
training images, the order of the images a strategy added, and the strategy's augmentation draws."""


def stream_seed(seed: int, name: str) -> int:
    """The seed of stream `name` of `seed`: numpy's SeedSequence with the stream's index as spawn key, so the
    streams of one seed, and those of different seeds, are statistically independent (no hashing of strings)."""
    words = np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 32 | int(words[1])


def stream_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded for stream `name` of `seed`."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))


class BatchSampler:
    """Index batches from a fresh permutation each epoch, drawn with the run's generator on the device."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, min(batch_size, n), generator
        self.order = torch.empty(0, dtype=torch.long)
        self.position = n

    def next(self) -> torch.Tensor:
        """The next batch of `batch_size` distinct indices; a permutation's tail too short for a batch is skipped."""
        if self.position + self.batch_size > self.n:
            self._reshuffle()
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def take(self, k: int) -> torch.Tensor:
        """The next `k` indices of the endless sequence of permutations, spanning epochs: whatever sizes the batches
        are, they cut the same sequence (an index may repeat within a batch that spans two permutations)."""
        parts = []
        while k > 0:
            if self.position >= self.n:
                self._reshuffle()
            part = self.order[self.position : self.position + k]
            self.position += len(part)
            k -= len(part)
            parts.append(part)
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=self.generator.device)

    def _reshuffle(self) -> None:
        self.order = torch.randperm(self.n, generator=self.generator, device=self.generator.device)
        self.position = 0


def synthetic_share(step: int, batch: int, added: int, total: int) -> int:
    """How many of batch `step`'s `batch` images come from the `added` (e.g. synthetic) images of a training set of
    `total`: the whole-number rule whose running sum is floor(steps × batch × added / total), so every batch holds
    the set's fraction of added images to within one, fixed by the step alone (it draws from no random stream)."""
    return ((step + 1) * batch * added) // total - (step * batch * added) // total


class MixedBatches:
    """Index batches of a training set whose first `n_real` images are the real ones and the other `n_added` were
    added by a strategy (synthetic or repeated): each batch takes `synthetic_share` added images from the added
    images' own stream and the rest from the real images' stream, both derived from the classifier `seed`. The real
    images thus come in one order for a seed whatever a strategy adds, which pairs strategies' runs by seed."""

    def __init__(self, n_real: int, n_added: int, batch_size: int, seed: int, device: torch.device | str) -> None:
        self.n_real, self.n_added, self.total = n_real, n_added, n_real + n_added
        self.batch = min(batch_size, self.total)
        self.real = BatchSampler(n_real, self.batch, stream_generator(seed, "real_order", device))
        self.added = BatchSampler(n_added, self.batch, stream_generator(seed, "synthetic_order", device))
        self.step = 0

    def next(self) -> torch.Tensor:
        """The next batch: its real indices, then its added ones (offset past the real images)."""
        added = synthetic_share(self.step, self.batch, self.n_added, self.total)
        self.step += 1
        real = self.real.take(self.batch - added)
        return torch.cat([real, self.added.take(added) + self.n_real]) if added else real
