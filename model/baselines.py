"""Baselines in the same harness as the GPT: Pop, GRU4Rec and BERT4Rec.

Each exposes what the trainer and evaluator need: `cfg` (a GPTConfig), `item_embeddings()`,
`encode(items, users)` -> (B, d), and for the auto-regressive ones `forward` -> (B, T, d).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .gpt import GPTConfig


class PopModel:
    """Scores every item by its count in the training sequences."""

    kind = "pop"

    def __init__(self, n_items: int, train: Sequence[np.ndarray], max_len: int = 50) -> None:
        flat = np.concatenate(list(train)) if len(train) else np.empty(0, np.int64)
        counts = np.bincount(flat, minlength=n_items + 1).astype(np.float32)
        counts[0] = 0
        self.counts = torch.from_numpy(counts)
        self.cfg = GPTConfig(n_items=n_items, max_len=max_len)

    def score(self, histories: Sequence[np.ndarray], users: np.ndarray) -> Tensor:
        return self.counts.expand(len(histories), -1).clone()  # (B, n_items + 1)

    def state_dict(self) -> dict[str, Tensor]:
        return {"counts": self.counts}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.counts = state["counts"]


class GRU4Rec(nn.Module):
    """Embedding -> GRU -> hidden state, scored against the item embedding table (tied)."""

    kind = "gru"

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.d_model, cfg.d_model, num_layers=max(1, cfg.n_layers // 2), batch_first=True)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def item_embeddings(self) -> Tensor:
        return self.item_emb.weight

    def forward(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        h, _ = self.gru(self.drop(self.item_emb(items)))  # (B, T, d); left padding feeds zeros first
        return self.out(self.drop(h))

    @torch.no_grad()
    def encode(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        h, _ = self.gru(self.item_emb(items))
        return self.out(h[:, -1])  # (B, d)


class BERT4Rec(nn.Module):
    """Bidirectional Transformer trained with the cloze objective; inference appends a [MASK] token.

    Positions are the window's columns (right-aligned), as in the original BERT4Rec."""

    kind = "bert"
    mask_prob = 0.4  # share of real items masked in training (`--set bert_mask_prob=P`)

    def __init__(self, cfg: GPTConfig, mask_prob: float = mask_prob) -> None:
        super().__init__()
        self.cfg = cfg
        self.mask_token = cfg.n_items + 1
        if not 0 < mask_prob < 1:
            raise ValueError(f"bert_mask_prob must be in (0, 1), not {mask_prob}")
        self.mask_prob = mask_prob
        d = cfg.d_model
        self.item_emb = nn.Embedding(cfg.n_items + 2, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.ln_in = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, cfg.d_ff, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def item_embeddings(self) -> Tensor:
        return self.item_emb.weight[: self.cfg.n_items + 1]  # without the [MASK] row

    def forward(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        """items: (B, T) left-padded, T <= max_len, may contain [MASK]; returns (B, T, d)."""
        T = items.shape[1]
        pos = torch.arange(self.cfg.max_len - T, self.cfg.max_len, device=items.device)
        x = self.drop(self.ln_in(self.item_emb(items) + self.pos_emb(pos)[None]))
        x = self.encoder(x, src_key_padding_mask=items == 0)
        return self.head(self.ln_f(x))

    def cloze(self, items: Tensor, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Mask items at random (and always the last one in a quarter of rows); returns inputs, labels."""
        real = items > 0
        m = (torch.rand(items.shape, generator=gen, device=items.device) < self.mask_prob) & real
        last = torch.rand(items.shape[0], generator=gen, device=items.device) < 0.25
        m[last, -1] = real[last, -1]
        inputs = items.masked_fill(m, self.mask_token)
        labels = items.masked_fill(~m, 0)
        return inputs, labels

    @torch.no_grad()
    def encode(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        items = items[:, -(self.cfg.max_len - 1):]
        masked = torch.cat([items, torch.full_like(items[:, :1], self.mask_token)], dim=1)
        return self.forward(masked)[:, -1]  # (B, d)
