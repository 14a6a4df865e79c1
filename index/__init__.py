"""FAISS item indexes for the online recall (numpy in, numpy out; never imports model/ or service/)."""

from .faiss_index import (
    KINDS,
    ItemIndex,
    ann_recall,
    build_index,
    exact_search,
    load_index,
    resolve_kind,
    set_threads,
)

__all__ = [
    "KINDS",
    "ItemIndex",
    "ann_recall",
    "build_index",
    "exact_search",
    "load_index",
    "resolve_kind",
    "set_threads",
]
