"""A distributed sampler that can start an epoch part-way, for exact mid-epoch resume."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` whose epoch can begin after the first ``start`` indices of this rank.

    The order of an epoch depends only on ``seed`` and the epoch (``set_epoch``), never on the world size:
    rank ``r`` of ``W`` reads positions ``r, r + W, ...`` of one shared permutation, so a global batch of
    ``W * b`` samples holds the same images as one process reading ``W * b`` at a time. ``set_start`` skips
    the part of the current epoch already trained; ``set_epoch`` clears it.
    Works without a process group when ``num_replicas`` and ``rank`` are given.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank in the current epoch."""
        self.start = max(0, min(int(start), self.num_samples))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start
