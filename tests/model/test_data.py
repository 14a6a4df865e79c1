import numpy as np
import pytest

from model.data import (
    DataError,
    IdMap,
    fetch,
    k_core_filter,
    leave_one_out,
    read_interactions,
    read_sequence_file,
    synthetic,
)


def test_split_of_a_hand_written_file(tmp_path):
    f = tmp_path / "tiny.txt"
    f.write_text("u1 10 11 12 13 14\nu2 20 21 22\n")
    data = read_sequence_file(f)
    sp = leave_one_out(data)
    ext = data.idmap.item_external
    assert [ext(i) for i in sp.train[0]] == ["10", "11", "12"]
    assert [ext(i) for i in sp.valid_hist[0]] == ["10", "11", "12"] and ext(sp.valid_target[0]) == "13"
    assert [ext(i) for i in sp.test_hist[0]] == ["10", "11", "12", "13"] and ext(sp.test_target[0]) == "14"
    assert [ext(i) for i in sp.train[1]] == ["20"]
    assert ext(sp.valid_target[1]) == "21" and ext(sp.test_target[1]) == "22"
    assert sp.users.tolist() == [1, 2]


def test_contiguous_numeric_ids_are_kept(tmp_path):
    f = tmp_path / "s3rec.txt"
    f.write_text("1 3 1 2\n2 2 3 1\n")
    data = read_sequence_file(f)
    assert data.sequences[0].tolist() == [3, 1, 2] and data.n_items == 3


def test_idmap_round_trips(tmp_path):
    data = synthetic(n_users=50, n_items=40, seed=3)
    data.idmap.save(tmp_path / "idmap.json")
    back = IdMap.load(tmp_path / "idmap.json")
    for i in range(1, data.n_items + 1):
        assert back.item(back.item_external(i)) == i
    assert back.user("u7") == data.idmap.user("u7") > 0
    assert back.user("never-seen") == 0 and back.item("never-seen") is None


def test_interaction_log_sorted_by_time_and_k_core(tmp_path):
    f = tmp_path / "log.csv"
    rows = ["user,item,timestamp"]
    for u in range(6):
        for t, it in enumerate(["a", "b", "c", "d", "e"][::-1]):  # written newest first
            rows.append(f"u{u},{it},{100 - t}")
    rows.append("u0,rare,1")  # an item seen once: dropped by the 5-core filter
    f.write_text("\n".join(rows) + "\n")
    data = read_interactions(f, k_core=5)
    ext = data.idmap.item_external
    assert [ext(i) for i in data.sequences[0]] == ["a", "b", "c", "d", "e"]  # oldest first
    assert data.idmap.item("rare") is None


def test_k_core_is_iterative():
    # dropping user z (2 items) makes item q fall under 2, which must then go too
    pairs = [("x", "p"), ("x", "q"), ("y", "p"), ("y", "r"), ("z", "q"), ("w", "p"), ("w", "r")]
    users, lists = k_core_filter(pairs, 2)
    assert "q" not in {i for lst in lists for i in lst}


def test_synthetic_is_seeded():
    a, b = synthetic(n_users=30, seed=1), synthetic(n_users=30, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences, strict=True))
    assert min(len(s) for s in a.sequences) >= 5


def test_fetch_refuses_a_wrong_checksum(tmp_path):
    bad = tmp_path / "Beauty.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(DataError, match="sha256"):
        fetch("beauty", from_path=str(bad), dest=tmp_path / "store")
    assert not (tmp_path / "store" / "Beauty.txt").exists()
