"""The GPT recommender: a causal Transformer over item-ID tokens with a user module.

Reads top to bottom: config, attention (with a key/value cache), block, the model. A user's score
for item i is <h_last, E[i]>, the same item embedding table E that an inner-product index serves (with
`output_head="serve"`, the output table the prompt stage trained instead of E).
With `user_module=False` (and no segment input) this model is SASRec.

Sequences are left-padded to a common width T (0 = padding), so the most recent item is always at
index T-1. Positions count from the first real item (0, 1, ...), not from the window's edge: then
appending items (stage 2 of the recall, prompt items) leaves the prefix's keys and values unchanged
and a key/value cache can extend an encoded history without re-encoding it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class GPTConfig:
    n_items: int
    n_users: int = 0
    max_len: int = 50  # longest history window
    max_extend: int = 50  # room for appended items (stage-2 recall, prompts) beyond max_len
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    dropout: float = 0.5
    user_module: bool = True  # False: SASRec
    user_dropout: float = 0.5  # training: a user's id is replaced by "unknown" with this probability
    # inference: each user's "own" vector, or the "unknown" vector for everyone. NOTE: on Beauty the own
    # vector scored the same on validation but 15% lower on test, one step further in time (docs/offline.md)
    infer_user: str = "own"
    mlp_dropout: bool = False  # dropout inside the MLP too (RecBole has none); Beauty: 0.0591 vs 0.0595 valid
    norm_first: bool = True  # pre-LayerNorm blocks (GPT-2); False: post-LayerNorm (the original Transformer)
    # the prompt stage's own output table (no bias), a copy of the item table when that stage starts
    # (`reset_output_head`): "none": the item table everywhere (tied) | "separate": the prompt stage's loss and
    # generation score against it, ranking (recall, a FAISS index) against the item table, as the authors' code does |
    # "serve": ranking scores against it too. Pre-training never reads it
    output_head: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KVCache:
    """Keys/values of an encoded batch, per layer, plus what is needed to extend it."""

    keys: list[Tensor]  # n_layers x (B, H, T, dh)
    values: list[Tensor]  # n_layers x (B, H, T, dh)
    key_valid: Tensor  # (B, T) bool: False for padding
    lengths: Tensor  # (B,) number of real tokens so far (= next position id)
    user_vec: Tensor  # (B, d) the user-module vector (zeros when off)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(
        self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: (B, t, d) new tokens; mask: (B, 1, t, T_total) bool, True = may attend; past: cached (k, v)."""
        B, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(B, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))  # (B,H,t,dh)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, T_total, dh)
            v = torch.cat([past[1], v], dim=2)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)  # (B, H, t, dh)
        y = y.transpose(1, 2).reshape(B, t, d)
        return self.proj(y), (k, v)


class Block(nn.Module):
    """Transformer block, pre- or post-LayerNorm."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff),
            nn.GELU(),
            nn.Dropout(cfg.dropout) if cfg.mlp_dropout else nn.Identity(),
            nn.Linear(cfg.d_ff, cfg.d_model),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if self.norm_first:
            a, kv = self.attn(self.ln1(x), mask, past)
            x = x + self.drop(a)
            return x + self.drop(self.mlp(self.ln2(x))), kv
        # NOTE: post-LN caches keys/values of the block's input, which is what later tokens attend to
        a, kv = self.attn(x, mask, past)
        x = self.ln1(x + self.drop(a))
        return self.ln2(x + self.drop(self.mlp(x))), kv


class GPTRec(nn.Module):
    """GPT decoder over item tokens; `user_module` adds a per-user vector to every input position."""

    kind = "gpt"
    # state_dict entries of the output head, which a pre-trained checkpoint lacks (the prompt stage fills them)
    head_keys: tuple[str, ...] = ("out_table", "head_filled")

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.item_emb = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len + cfg.max_extend, d)
        self.seg_emb = nn.Embedding(2, d)  # 0 = real history item, 1 = appended by the system
        # row 0 = the learned "unknown user" vector, for users unseen in training
        self.user_emb = nn.Embedding(cfg.n_users + 1, d) if cfg.user_module else None
        self.ln_in = nn.LayerNorm(d)  # NOTE: unit-scale inputs; without it learning starts several epochs later
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.apply(self._init)
        # NOTE: zeros, made after the random init: a model with the head draws the same random numbers as one
        # without (same pre-training to the digit); `reset_output_head` fills it when the prompt stage starts, and
        # until then (pre-training, its checkpoints) `head_filled` is False and the item table serves for it
        if cfg.output_head not in ("none", "separate", "serve"):
            raise ValueError(f"output_head must be none, separate or serve, not {cfg.output_head!r}")
        self.out_table = nn.Parameter(torch.zeros(cfg.n_items + 1, d)) if cfg.output_head != "none" else None
        if self.out_table is not None:
            self.register_buffer("head_filled", torch.zeros((), dtype=torch.bool))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    # ------------------------------------------------------------------------------------------ pieces

    def _head(self) -> Tensor | None:
        return self.out_table if self.out_table is not None and bool(self.head_filled) else None

    def item_embeddings(self) -> Tensor:
        """(n_items + 1, d): the table that scores (and a FAISS index) use; row 0 is padding. The input embedding
        table, or the output head once filled with output_head="serve"."""
        head = self._head() if self.cfg.output_head == "serve" else None
        return self.item_emb.weight if head is None else head

    def output_table(self) -> Tensor:
        """(n_items + 1, d): the table the prompt stage's loss and its prompt generation score against: the output
        head once filled, else the item embedding table."""
        head = self._head()
        return self.item_emb.weight if head is None else head

    def set_dropout(self, p: float) -> None:
        """Every dropout rate of the blocks and the embeddings to p (the user module's is its own: user_dropout);
        cfg.dropout keeps the rate the model was built with."""
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = p
            elif isinstance(m, CausalSelfAttention):
                m.dropout = p

    @torch.no_grad()
    def reset_output_head(self) -> None:
        """Start the output head as a copy of the item table (a no-op without one): the prompt stage's first
        generation, loss and ranking are then the tied model's."""
        if self.out_table is not None:
            self.out_table.copy_(self.item_emb.weight)
            self.head_filled.fill_(True)

    def _user_vec(self, users: Tensor | None, B: int) -> Tensor:
        if self.user_emb is None:
            return self.item_emb.weight.new_zeros(B, self.cfg.d_model)
        if users is None or (not self.training and self.cfg.infer_user == "unknown"):
            users = torch.zeros(B, dtype=torch.long, device=self.item_emb.weight.device)
        if self.training and self.cfg.user_dropout > 0:
            users = users.masked_fill(torch.rand(users.shape, device=users.device) < self.cfg.user_dropout, 0)
        return self.user_emb(users)  # (B, d)

    def _embed(self, items: Tensor, positions: Tensor, segments: Tensor | None, user_vec: Tensor) -> Tensor:
        # h0 = item + user + position + segment (padding rows get zeros from the padding embedding)
        positions = positions.clamp(max=self.pos_emb.num_embeddings - 1)
        if segments is None:
            segments = torch.zeros_like(items)
        x = self.item_emb(items) + self.pos_emb(positions) + self.seg_emb(segments) + user_vec[:, None, :]
        return self.emb_drop(self.ln_in(x))  # (B, t, d)

    @staticmethod
    def _mask(q_valid: Tensor, key_valid: Tensor) -> Tensor:
        """(B, 1, t, T) attention mask for t new queries at the end of T keys: causal and no padding keys.
        A query always sees itself, so that padding rows never attend to nothing (NaN)."""
        t, T = q_valid.shape[1], key_valid.shape[1]
        causal = torch.ones(t, T, dtype=torch.bool, device=key_valid.device).tril(diagonal=T - t)  # (t, T)
        self_key = torch.zeros(t, T, dtype=torch.bool, device=key_valid.device)
        self_key[torch.arange(t, device=key_valid.device), torch.arange(T - t, T, device=key_valid.device)] = True
        return (causal & key_valid[:, None, :] | self_key)[:, None]  # (B, 1, t, T)

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        """Hidden state at every position. items: (B, T) left-padded; returns (B, T, d)."""
        h, _ = self._run(items, users, segments, cache=None)
        return h

    def _run(
        self, items: Tensor, users: Tensor | None, segments: Tensor | None, cache: KVCache | None
    ) -> tuple[Tensor, KVCache]:
        B, t = items.shape
        valid = items > 0  # (B, t)
        if cache is None:
            user_vec = self._user_vec(users, B)
            # positions from the first real item: left padding shifts them so the first real one is 0
            positions = (valid.long().cumsum(1) - 1).clamp(min=0)  # (B, t)
            key_valid, pasts = valid, [None] * len(self.blocks)
            start = torch.zeros(B, dtype=torch.long, device=items.device)
        else:
            user_vec = cache.user_vec
            positions = cache.lengths[:, None] + (valid.long().cumsum(1) - 1).clamp(min=0)
            key_valid = torch.cat([cache.key_valid, valid], dim=1)
            pasts = list(zip(cache.keys, cache.values, strict=True))
            start = cache.lengths
        x = self._embed(items, positions, segments, user_vec)
        mask = self._mask(valid, key_valid)
        keys, values = [], []
        for block, past in zip(self.blocks, pasts, strict=True):
            x, (k, v) = block(x, mask, past)
            keys.append(k)
            values.append(v)
        new_cache = KVCache(keys, values, key_valid, start + valid.sum(1), user_vec)
        return self.ln_f(x), new_cache

    # ------------------------------------------------------------------------------------------ inference

    @torch.no_grad()
    def encode(self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None) -> Tensor:
        """User vectors (B, d) for left-padded histories (B, T): the last position's hidden state."""
        return self.encode_with_cache(items, users, segments)[0]

    @torch.no_grad()
    def encode_with_cache(
        self, items: Tensor, users: Tensor | None = None, segments: Tensor | None = None
    ) -> tuple[Tensor, KVCache]:
        h, cache = self._run(items, users, segments, cache=None)
        return h[:, -1], cache  # (B, d)

    @torch.no_grad()
    def extend(self, cache: KVCache, items: Tensor, segment: int = 1) -> tuple[Tensor, KVCache]:
        """Append items (B, t) to an encoded batch, computing only the new positions.

        Returns the new last hidden state (B, d) and the extended cache; equals re-encoding the
        concatenated sequence (tests/test_gpt.py checks it)."""
        segments = torch.full_like(items, segment)
        h, cache = self._run(items, None, segments, cache=cache)
        return h[:, -1], cache


def scores(user_vecs: Tensor, item_table: Tensor) -> Tensor:
    """Inner-product scores (B, n_items + 1); column 0 (padding) is -inf."""
    s = user_vecs @ item_table.T
    s[:, 0] = -math.inf
    return s
