"""Training batches: each user's training window, and batches of users with similar lengths."""

from __future__ import annotations

import numpy as np
import torch

from .evaluate import pad_left


def training_windows(train: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's last max_len + 1 training items, left-padded: (U', max_len + 1), and their user ids.
    Users with a single training item have no (input, target) pair and are left out."""
    keep = np.array([len(s) >= 2 for s in train])
    windows = pad_left([s for s, k in zip(train, keep, strict=True) if k], max_len + 1, width=max_len + 1)
    users = torch.from_numpy(np.flatnonzero(keep) + 1)
    return windows, users


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: bool = True
                   ) -> list[np.ndarray]:
    """Batches of rows with similar lengths, in random order.

    NOTE: most rows are short (Beauty: 7 training items on average, window 51), so a batch cut to its
    own longest row computes about 7x fewer positions than full windows; on 2 CPU cores that, not
    the matmuls, decides the epoch time (dropout's RNG alone is half of a full-width step)."""
    if not bucket:  # plain random batches (each still cut to its own longest row)
        order = rng.permutation(len(lengths))
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    order = np.lexsort((rng.random(len(lengths)), lengths))  # by length, ties in random order
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches
