"""Training losses over the positions that have a target (padding positions are dropped first).

h: (P, d) hidden states at P positions, targets: (P,) next items, table: (n_items + 1, d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class NegativeSampler:
    """Negatives drawn uniformly or by popularity, re-drawn (a few times) when they hit the user's own items."""

    def __init__(self, n_items: int, counts: Tensor | None = None, by: str = "uniform") -> None:
        if by not in ("uniform", "pop"):
            raise ValueError(f"sampler must be uniform or pop, not {by!r}")
        self.n_items = n_items
        self.by = by
        probs = torch.ones(n_items + 1) if by == "uniform" or counts is None else counts.float().clamp(min=1)
        probs[0] = 0
        self.probs = probs / probs.sum()  # (n_items + 1,)
        self.log_q = torch.log(self.probs.clamp(min=1e-12))
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> NegativeSampler:
        """Draw on `device` (the model's)."""
        self.device = torch.device(device)
        self.probs, self.log_q = self.probs.to(self.device), self.log_q.to(self.device)
        return self

    def draw(self, shape: tuple[int, ...]) -> Tensor:
        n = int(torch.tensor(shape).prod())
        if self.by == "uniform":
            return torch.randint(1, self.n_items + 1, shape, device=self.device)
        return torch.multinomial(self.probs, n, replacement=True).view(shape)

    def draw_excluding(self, shape: tuple[int, int], own: Tensor, tries: int = 3) -> Tensor:
        """(P, n) negatives; own: (P, L) the items of each position's user (0-padded)."""
        neg = self.draw(shape)
        for _ in range(tries):
            clash = (neg[:, :, None] == own[:, None, :]).any(-1)  # (P, n)
            if not clash.any():
                break
            neg[clash] = self.draw((int(clash.sum()),))
        return neg


def bce_loss(h: Tensor, targets: Tensor, table: Tensor, negatives: Tensor) -> Tensor:
    """SASRec's loss: sigmoid BCE of the target (label 1) and each sampled negative (label 0)."""
    pos = (h * table[targets]).sum(-1)  # (P,)
    neg = torch.einsum("pd,pnd->pn", h, table[negatives])  # (P, n)
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros_like(neg)
    ) * negatives.shape[1]


def sampled_softmax_loss(h: Tensor, targets: Tensor, table: Tensor, negatives: Tensor, log_q: Tensor) -> Tensor:
    """Softmax over the target and S negatives shared by the batch, with the log-Q correction."""
    pos = (h * table[targets]).sum(-1, keepdim=True) - log_q[targets][:, None]  # (P, 1)
    neg = h @ table[negatives].T - log_q[negatives][None, :]  # (P, S)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)  # a negative that is the target
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long, device=h.device))


def ce_loss(h: Tensor, targets: Tensor, table: Tensor, weights: Tensor | None = None,
            exclude: Tensor | None = None, smoothing: float = 0.0) -> Tensor:
    """Full-softmax cross-entropy over all items (negative log-likelihood of the real next item); with
    weights (P,), their weighted mean over positions. exclude (P, E): item ids (0: none) left out of each
    position's softmax; a position whose target is one of them has no loss. NOTE: the mean is over what is left,
    so a caller must leave some position (prompt_loss does: its real positions exclude nothing). smoothing: label
    smoothing over all items (without exclude: an excluded item's -inf logit would make it infinite)."""
    if smoothing and exclude is not None:
        raise ValueError("label smoothing and excluded items do not go together")
    if exclude is None:
        logits = h @ table[1:].T  # (P, n_items): padding row 0 left out, so class c is item c + 1
    else:
        keep = ~(exclude == targets[:, None]).any(1)  # (P,)
        h, targets, exclude = h[keep], targets[keep], exclude[keep]
        weights = None if weights is None else weights[keep]
        # NOTE: scattered over all V + 1 columns so that exclude's padding 0 lands on the padding column, then cut
        logits = (h @ table.T).scatter(1, exclude, -torch.inf)[:, 1:]  # (P', n_items)
    if weights is None:
        return F.cross_entropy(logits, targets - 1, label_smoothing=smoothing)
    per = F.cross_entropy(logits, targets - 1, reduction="none", label_smoothing=smoothing)  # (P,)
    return (per * weights).sum() / weights.sum()


def unlikelihood_loss(h: Tensor, items: Tensor, table: Tensor) -> Tensor:
    """Unlikelihood (Welleck et al., 2019) of items that were shown and not taken: the mean of -log(1 - p(item))
    under the full softmax over all items at each position. h: (P, d), items: (P,). Its gradient is on the scale
    of cross-entropy's, where a sigmoid BCE term on the same logits is not (see model/prompt.py)."""
    logp = torch.log_softmax(h @ table[1:].T, -1).gather(1, (items - 1)[:, None]).squeeze(1)  # (P,)
    return -torch.log1p(-logp.exp().clamp(max=1 - 1e-6)).mean()
