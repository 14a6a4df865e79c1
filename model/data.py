"""Data: readers, the synthetic generator, k-core filtering, id maps and the leave-one-out split.

Internal ids: items are 1..n_items (0 is padding), users are 1..n_users (0 is "unknown user").
External ids are strings; the `IdMap` is saved with every run because the service receives them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# NOTE: the four S3-Rec files, their public source and sha256 (see ../shared/data/README.md).
_S3REC_RAW = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/2a81540ae18615d88ef88227b0c066e5b74781e5/data/"
DATASETS: dict[str, tuple[str, str]] = {
    "beauty": ("Beauty.txt", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
    "sports": ("Sports_and_Outdoors.txt", "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2"),
    "toys": ("Toys_and_Games.txt", "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f"),
    "yelp": ("Yelp.txt", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
}


class DataError(ValueError):
    """A data file or name that cannot be used; the message says why."""


@dataclass
class IdMap:
    """External string ids <-> internal ids. Index 0 of each list is the reserved id (padding / unknown)."""

    items: list[str]  # items[i] = external id of internal item i; items[0] = "<pad>"
    users: list[str]  # users[u] = external id of internal user u; users[0] = "<unk>"
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._item_index = {s: i for i, s in enumerate(self.items) if i > 0}
        self._user_index = {s: u for u, s in enumerate(self.users) if u > 0}

    @property
    def n_items(self) -> int:
        return len(self.items) - 1

    @property
    def n_users(self) -> int:
        return len(self.users) - 1

    def item(self, external: str) -> int | None:
        return self._item_index.get(str(external))

    def user(self, external: str) -> int:
        """Internal user id, 0 (the learned unknown-user vector) for a user unseen in training."""
        return self._user_index.get(str(external), 0)

    def item_external(self, internal: int) -> str:
        return self.items[internal]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"items": self.items, "users": self.users}))

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        d = json.loads(Path(path).read_text())
        return cls(items=d["items"], users=d["users"])


@dataclass
class SeqData:
    """Time-ordered internal item sequences, one per internal user (sequences[u-1] belongs to user u)."""

    name: str
    sequences: list[np.ndarray]
    idmap: IdMap

    @property
    def n_items(self) -> int:
        return self.idmap.n_items

    @property
    def n_users(self) -> int:
        return len(self.sequences)


@dataclass
class Split:
    """Leave-one-out split (S3-Rec protocol).

    train[u] = items[:-2]; valid: history items[:-2] -> target items[-2]; test: history items[:-1] -> items[-1].
    """

    train: list[np.ndarray]
    valid_hist: list[np.ndarray]
    valid_target: np.ndarray  # (U,)
    test_hist: list[np.ndarray]
    test_target: np.ndarray  # (U,)
    users: np.ndarray  # (U,) internal user ids


def leave_one_out(data: SeqData) -> Split:
    seqs = [s for s in data.sequences]
    short = sum(1 for s in seqs if len(s) < 3)
    if short:
        raise DataError(f"{short} users have fewer than 3 interactions; filter with k-core >= 3 first")
    return Split(
        train=[s[:-2] for s in seqs],
        valid_hist=[s[:-2] for s in seqs],
        valid_target=np.array([s[-2] for s in seqs], dtype=np.int64),
        test_hist=[s[:-1] for s in seqs],
        test_target=np.array([s[-1] for s in seqs], dtype=np.int64),
        users=np.arange(1, len(seqs) + 1, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------- readers


def _from_user_lists(name: str, users: list[str], lists: list[list[str]]) -> SeqData:
    items: list[str] = ["<pad>"]
    index: dict[str, int] = {}
    seqs = []
    for lst in lists:
        row = []
        for it in lst:
            i = index.get(it)
            if i is None:
                i = index[it] = len(items)
                items.append(it)
            row.append(i)
        seqs.append(np.asarray(row, dtype=np.int64))
    return SeqData(name=name, sequences=seqs, idmap=IdMap(items=items, users=["<unk>", *users]))


def read_sequence_file(path: str | Path, name: str | None = None) -> SeqData:
    """One user a line: `user item item ...`, oldest first (the S3-Rec format).

    Internal item ids follow first appearance; for the S3-Rec files (ids 1..M, no gaps) we keep the
    file's own numbering so that internal id == external id.
    """
    path = Path(path)
    users, lists = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{n}: expected 'user item item ...', got {line.strip()!r}")
            users.append(parts[0])
            lists.append(parts[1:])
    if not users:
        raise DataError(f"{path}: no users")
    all_items = {it for lst in lists for it in lst}
    if all(it.isdigit() for it in all_items):
        m = max(int(it) for it in all_items)
        if len(all_items) == m and min(int(it) for it in all_items) == 1:  # contiguous 1..M: keep numbering
            idmap = IdMap(items=["<pad>", *[str(i) for i in range(1, m + 1)]], users=["<unk>", *users])
            seqs = [np.asarray([int(x) for x in lst], dtype=np.int64) for lst in lists]
            return SeqData(name=name or path.stem, sequences=seqs, idmap=idmap)
    return _from_user_lists(name or path.stem, users, lists)


def read_interactions(path: str | Path, k_core: int = 5, name: str | None = None) -> SeqData:
    """A log of `user,item[,timestamp]` rows (CSV, TSV or Parquet): sort by time, k-core filter, map ids."""
    import pandas as pd

    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        df = pd.read_csv(path, sep=sep, dtype=str)
    cols = {c.lower(): c for c in df.columns}
    for need in ("user", "item"):
        if need not in cols:
            raise DataError(f"{path}: needs columns user,item[,timestamp]; has {list(df.columns)}")
    df = df.rename(columns={cols["user"]: "user", cols["item"]: "item"})
    df["user"] = df["user"].astype(str)
    df["item"] = df["item"].astype(str)
    if "timestamp" in cols:
        df["timestamp"] = pd.to_numeric(df[cols["timestamp"]])
        df = df.sort_values(["user", "timestamp"], kind="stable")  # stable: file order breaks ties
    pairs = list(zip(df["user"], df["item"], strict=True))
    users, lists = k_core_filter(pairs, k_core)
    if not users:
        raise DataError(f"{path}: nothing left after the {k_core}-core filter")
    return _from_user_lists(name or path.stem, users, lists)


def k_core_filter(pairs: list[tuple[str, str]], k: int) -> tuple[list[str], list[list[str]]]:
    """Iteratively drop users and items with fewer than k interactions. Keeps per-user order."""
    while True:
        uc = Counter(u for u, _ in pairs)
        ic = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k]
        if len(kept) == len(pairs):
            break
        pairs = kept
    by_user: dict[str, list[str]] = defaultdict(list)
    for u, i in pairs:
        by_user[u].append(i)
    users = list(by_user)
    return users, [by_user[u] for u in users]


# ---------------------------------------------------------------------------------------------- synthetic


def synthetic(
    n_users: int = 2000, n_items: int = 500, n_tastes: int = 8, mean_len: int = 12, seed: int = 0
) -> SeqData:
    """Sequences with real order: each user follows a sparse, popularity-skewed item-transition graph
    restricted to one of a few tastes; a model that learns the transitions clearly beats popularity."""
    rng = np.random.default_rng(seed)
    taste_of_item = rng.integers(0, n_tastes, size=n_items + 1)
    pop = rng.zipf(1.6, size=n_items + 1).astype(np.float64).clip(max=50)
    # every item has 3 likely successors, preferring items of the same taste and popular ones
    succ = np.zeros((n_items + 1, 3), dtype=np.int64)
    for i in range(1, n_items + 1):
        same = np.flatnonzero(taste_of_item == taste_of_item[i])
        same = same[(same != i) & (same > 0)]
        p = pop[same] / pop[same].sum()
        succ[i] = rng.choice(same, size=3, replace=len(same) < 3, p=p)
    seqs, users = [], []
    for u in range(n_users):
        length = max(5, int(rng.poisson(mean_len)))
        taste = rng.integers(n_tastes)
        cands = np.flatnonzero(taste_of_item == taste)
        cands = cands[cands > 0]
        cur = int(rng.choice(cands))
        seq = [cur]
        while len(seq) < length:
            r = rng.random()
            if r < 0.85:
                nxt = int(succ[cur, rng.choice(3, p=[0.6, 0.25, 0.15])])
            else:  # noise: a popular item of the user's taste
                nxt = int(rng.choice(cands, p=pop[cands] / pop[cands].sum()))
            if nxt in seq[-3:]:
                nxt = int(rng.choice(cands))
            seq.append(nxt)
            cur = nxt
        seqs.append([str(x) for x in seq])
        users.append(f"u{u + 1}")
    return _from_user_lists("synthetic", users, seqs)


# ---------------------------------------------------------------------------------------------- resolving


def data_dir() -> Path:
    """Where named data sets are read: RECGPT_DATA_DIR, else ../shared/data beside the checkout, else ~/.cache."""
    env = os.environ.get("RECGPT_DATA_DIR")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "recgpt" / "data"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, from_path: str | None = None, dest: str | Path | None = None) -> Path:
    """Download (or copy from `from_path`) a named data set into `dest` and verify its sha256."""
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    fname, digest = DATASETS[key]
    dest_dir = Path(dest) if dest else data_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / fname
    tmp = target.with_suffix(".part")
    if from_path:
        shutil.copyfile(from_path, tmp)
    else:
        with urllib.request.urlopen(_S3REC_RAW + fname, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    got = sha256_file(tmp)
    if got != digest:
        tmp.unlink()
        raise DataError(f"{fname}: sha256 {got} does not match the expected {digest}")
    tmp.replace(target)
    return target


def load_dataset(name_or_path: str, k_core: int = 5, seed: int = 0) -> SeqData:
    """`synthetic`, a named data set (beauty, sports, toys, yelp), or a path to a file."""
    key = name_or_path.lower()
    if key == "synthetic":
        return synthetic(seed=seed)
    if key in DATASETS:
        fname, _ = DATASETS[key]
        path = data_dir() / fname
        if not path.exists():
            raise DataError(
                f"{path} not found: run `recgpt data fetch {key}` (or --from a local copy), "
                "or set RECGPT_DATA_DIR to the folder that holds it"
            )
        return read_sequence_file(path, name=key)
    path = Path(name_or_path)
    if not path.exists():
        raise DataError(f"{name_or_path!r} is neither a data set name (synthetic, {', '.join(DATASETS)}) nor a file")
    if path.suffix in (".csv", ".tsv", ".tab", ".parquet"):
        return read_interactions(path, k_core=k_core)
    return read_sequence_file(path)


def stats(data: SeqData) -> dict[str, float]:
    lens = np.array([len(s) for s in data.sequences])
    n_items_used = len({int(i) for s in data.sequences for i in s})
    return {
        "users": int(len(lens)),
        "items": n_items_used,
        "interactions": int(lens.sum()),
        "avg_len": round(float(lens.mean()), 2),
        "min_len": int(lens.min()),
        "max_len": int(lens.max()),
    }
