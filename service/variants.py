"""A/B variants: a config file, traffic shares and sticky assignment by hash of (salt, user_id).

File (YAML or JSON):

    salt: exp-2024-06          # change it to reshuffle users
    variants:
      - name: control
        share: 0.5
        split: 1.0             # fraction of K from stage 1: 1.0 = one-stage recall
      - name: treatment
        share: 0.5
        split: 0.9             # two-stage: N = round(0.9 K), M = K - N
        splits: {10: 8, 50: 40}  # optional: N for these K exactly (M = K - N); other K use `split`
        bundle: bundles/other  # optional: another bundle (default: the service's bundle)
        append: 1              # optional: which stage-1 items stage 2 appends (all | reversed | an int);
                               # default: what the bundle was evaluated with offline

Without a file there is one variant, "default": two-stage with split 0.9.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from model.recall import parse_append


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    share: float = Field(default=1.0, ge=0)
    split: float = Field(default=0.9, gt=0, le=1)
    splits: dict[int, int] = Field(default_factory=dict)  # K -> N, overriding `split` for that K
    bundle: str | None = None
    append: str | int | None = None  # None: the bundle's own (Bundle.default_append)

    @field_validator("splits")
    @classmethod
    def _check_splits(cls, v: dict[int, int]) -> dict[int, int]:
        bad = {k: n for k, n in v.items() if not 1 <= n <= k}
        if bad:
            raise ValueError(f"splits: N must be 1..K for each K, not {bad}")
        return v

    @field_validator("append")
    @classmethod
    def _check_append(cls, v: str | int | None) -> str | int | None:
        return None if v is None else parse_append(v)

    def n_m(self, k: int) -> tuple[int, int]:
        """The (N, M) split of K: N from `splits` for that K, else round(split * K), at least 1."""
        n = self.splits[k] if k in self.splits else min(k, max(1, round(self.split * k)))
        return n, k - n


class VariantsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    salt: str = "recgpt"
    variants: list[Variant]

    @field_validator("variants")
    @classmethod
    def _check(cls, v: list[Variant]) -> list[Variant]:
        if not v:
            raise ValueError("at least one variant is needed")
        names = [x.name for x in v]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        if sum(x.share for x in v) <= 0:
            raise ValueError("variant shares sum to 0")
        return v

    def by_name(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def assign(self, user_id: str) -> Variant:
        """Sticky: the same (salt, user) always lands in the same variant while the shares stay."""
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
        total = sum(v.share for v in self.variants)
        acc = 0.0
        for v in self.variants:
            acc += v.share / total
            if u < acc:
                return v
        return [v for v in self.variants if v.share > 0][-1]


DEFAULT = VariantsConfig(variants=[Variant(name="default", share=1.0, split=0.9)])


def load_variants(path: str | Path | None) -> VariantsConfig:
    if not path:
        return DEFAULT
    p = Path(path)
    text = p.read_text()
    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    return VariantsConfig.model_validate(data)
