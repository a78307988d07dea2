"""Index sampling shared by the classifier and generator loops: batches by index, on the device, seeded."""

from __future__ import annotations

import torch


class BatchSampler:
    """Index batches from a fresh permutation each epoch, drawn with the run's generator on the device."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, min(batch_size, n), generator
        self.order = torch.empty(0, dtype=torch.long)
        self.position = n

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator, device=self.generator.device)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch
