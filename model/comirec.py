"""ComiRec-SA: self-attentive multi-interest extraction (Cen et al., KDD 2020), the system RecGPT
replaced online. Several interest vectors per user; each retrieves items; lists merge by score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .evaluate import pad_left
from .gpt import GPTConfig


class ComiRecSA(nn.Module):
    kind = "comirec"

    def __init__(self, cfg: GPTConfig, n_interests: int = 4, cuts: int = 4) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_interests = n_interests
        self.cuts = cuts  # training: targets drawn per window and epoch
        d = cfg.d_model
        self.item_emb = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.w1 = nn.Linear(d, 4 * d, bias=False)
        self.w2 = nn.Linear(4 * d, n_interests, bias=False)
        self.drop = nn.Dropout(cfg.dropout)
        for p in self.parameters():
            nn.init.normal_(p, std=0.02)

    def item_embeddings(self) -> Tensor:
        return self.item_emb.weight

    def interests(self, items: Tensor) -> Tensor:
        """(B, T) left-padded histories -> (B, K, d) interest vectors."""
        T = items.shape[1]
        h = self.drop(self.item_emb(items))  # (B, T, d)
        pos = self.pos_emb(torch.arange(self.cfg.max_len - T, self.cfg.max_len, device=items.device))
        a = self.w2(torch.tanh(self.w1(h + pos[None])))  # (B, T, K)
        a = a.masked_fill((items == 0)[..., None], -torch.inf).softmax(dim=1)
        a = torch.nan_to_num(a)  # an empty history: no attention anywhere
        return torch.einsum("btk,btd->bkd", a, h)

    def loss(self, windows: Tensor) -> Tensor:
        """Windows (B, L + 1): per row, `cuts` random targets, each predicted from the items before it by
        the interest closest to it (ComiRec's hard selection), with full-softmax cross-entropy."""
        B, W = windows.shape
        lengths = (windows > 0).sum(1)
        rows = windows.repeat(self.cuts, 1)  # (cB, W)
        n = lengths.repeat(self.cuts)
        # target column: one of the last n-1 real columns (the first real item has no history)
        cut = W - 1 - (torch.rand(len(rows), device=rows.device) * (n - 1).clamp(min=1).float()).long()
        target = rows.gather(1, cut[:, None]).squeeze(1)
        col = torch.arange(W, device=rows.device)[None, :]  # (1, W)
        keep = col < cut[:, None]
        hist = rows.masked_fill(~keep, 0)
        hist = torch.cat([torch.zeros_like(hist), hist], 1).gather(  # shift right so the history ends at T-1
            1, (col + cut[:, None]).clamp(max=2 * W - 1))
        ok = (target > 0) & ((hist > 0).sum(1) > 0)
        v = self.interests(hist[ok][:, -self.cfg.max_len:])  # (P, K, d)
        t = target[ok]
        e = self.item_emb(t)  # (P, d)
        pick = torch.einsum("pkd,pd->pk", v, e).argmax(1)
        u = v[torch.arange(len(v), device=v.device), pick]  # (P, d)
        return F.cross_entropy(u @ self.item_emb.weight[1:].T, t - 1)

    @torch.no_grad()
    def encode_interests(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        return self.interests(items[:, -self.cfg.max_len:])

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray], users: np.ndarray) -> Tensor:
        """(B, n_items + 1): an item's score is its best inner product over the user's interests."""
        v = self.encode_interests(pad_left(histories, self.cfg.max_len).to(self.item_emb.weight.device))
        return torch.einsum("bkd,nd->bkn", v, self.item_emb.weight).amax(1)
