"""The recall itself, as plain functions over a `Served` snapshot (no FastAPI here).

The model work is `model.recall.two_stage_recall` (the one recall implementation), searched through
the bundle's FAISS index. NOTE: torch work is blocking: call these from `def` routes (FastAPI's
threadpool) or a thread pool, never from inside `async def`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from model.recall import two_stage_recall

from .bundle import Bundle, load_bundle
from .metrics import Metrics
from .settings import Settings
from .variants import Variant, VariantsConfig, load_variants

STAGE_NAMES = {1: "1", 2: "2"}
POPULAR = "popular"


class BadRequest(ValueError):
    """A request the service understood but cannot honour (answered 422 with the message)."""


@dataclass
class Served:
    """What one reload produces: variants and their bundles, built fully before being swapped in."""

    variants: VariantsConfig
    bundles: dict[str, Bundle]  # variant name -> bundle
    default: Bundle
    loaded_at: float = field(default_factory=time.time)

    def versions(self) -> dict[str, str]:
        return {name: b.version for name, b in self.bundles.items()}


def build_served(settings: Settings, bundle_path: str | None = None) -> Served:
    """Load the main bundle and every variant's bundle (each path once). Raises on any failure."""
    path = bundle_path or settings.bundle
    if not path:
        raise ValueError("no bundle: set RECGPT_BUNDLE or pass a bundle folder")
    variants = load_variants(settings.variants)
    loaded = {str(path): load_bundle(path, settings.faiss_threads)}
    bundles = {}
    for v in variants.variants:
        p = str(v.bundle or path)
        if p not in loaded:
            loaded[p] = load_bundle(p, settings.faiss_threads)
        bundles[v.name] = loaded[p]
    return Served(variants=variants, bundles=bundles, default=loaded[str(path)])


@dataclass
class RecallOutcome:
    variant: str
    version: str
    items: list[tuple[str, float, str]]  # (external id, score, stage)
    n: int
    m: int
    history_source: str  # request | store | none
    dropped: int


def resolve_split(
    settings: Settings, variant: Variant, k: int | None, n: int | None, m: int | None
) -> tuple[int, int, int]:
    """(K, N, M). Only K: the variant's split of K. N and/or M given: the rest is K minus them; K >= N + M."""
    if n is not None and m is not None and k is None:
        k = n + m
    k = settings.default_k if k is None else k
    if not 1 <= k <= settings.max_k:
        raise BadRequest(f"k must be in 1..{settings.max_k}, got {k}")
    if n is None and m is None:
        n, m = variant.n_m(k)
    elif n is None:
        n = k - m
    elif m is None:
        m = k - n
    if n < 1 or m < 0 or n + m > k:
        raise BadRequest(f"need n >= 1, m >= 0 and n + m <= k; got n={n}, m={m}, k={k}")
    return k, n, m


def pick_variant(served: Served, user_id: str, forced: str | None) -> Variant:
    if forced is not None:
        v = served.variants.by_name(forced)
        if v is None:
            names = [x.name for x in served.variants.variants]
            raise BadRequest(f"unknown variant {forced!r}; this service has {names}")
        return v
    return served.variants.assign(user_id)


def popular_items(bundle: Bundle, k: int, exclude: set[int]) -> list[tuple[str, float, str]]:
    out = []
    for i, c in zip(bundle.popular.tolist(), bundle.popular_counts.tolist(), strict=True):
        if i not in exclude:
            out.append((bundle.idmap.item_external(i), float(c), POPULAR))
            if len(out) == k:
                break
    return out


def recall(
    served: Served,
    variant: Variant,
    user_id: str,
    history_ext: list[str],
    history_source: str,
    k: int,
    n: int,
    m: int,
    exclude_ext: list[str],
    metrics: Metrics,
    traffic: str = "served",
) -> RecallOutcome:
    """The K-list for one user: two-stage (or one-stage, m = 0) recall, or popular items without history."""
    bundle = served.bundles[variant.name]
    idmap = bundle.idmap
    mapped = [idmap.item(x) for x in history_ext]
    # NOTE: the whole history is excluded from the results, as offline; the model reads its last max_len
    hist = np.asarray([i for i in mapped if i is not None], dtype=np.int64)
    dropped = sum(1 for i in mapped if i is None)
    if dropped:
        metrics.unknown_items.inc(dropped)
    excl = {i for i in (idmap.item(x) for x in exclude_ext) if i is not None}
    if len(hist) == 0:
        metrics.cold_start.labels(variant=variant.name).inc()
        return RecallOutcome(
            variant.name,
            bundle.version,
            popular_items(bundle, k, excl),
            n,
            m,
            history_source if history_ext else "none",
            dropped,
        )

    marks: list[float] = [time.perf_counter()]

    def search(queries: np.ndarray, kk: int, ex: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        res = bundle.index.search(queries, kk, ex)
        marks.append(time.perf_counter())
        return res

    res = two_stage_recall(
        bundle.model,
        [hist],
        np.asarray([idmap.user(user_id)]),
        n,
        m,
        search,
        exclude=[np.fromiter(excl, dtype=np.int64, count=len(excl))],
        append=bundle.default_append if variant.append is None else variant.append,
    )
    metrics.latency.labels(stage="stage1", traffic=traffic).observe(marks[1] - marks[0])
    if len(marks) > 2:
        metrics.latency.labels(stage="stage2", traffic=traffic).observe(marks[2] - marks[1])
    items = [
        (idmap.item_external(int(i)), float(s), STAGE_NAMES[int(st)])
        for i, s, st in zip(res.items[0], res.scores[0], res.stages[0], strict=True)
        if i > 0
    ]
    return RecallOutcome(variant.name, bundle.version, items, n, m, history_source, dropped)
