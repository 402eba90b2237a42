from __future__ import annotations

import mongomock
import pytest

from interphase_dft.errors import StoreError
from interphase_dft.store import ResultStore


@pytest.fixture
def store():
    s = ResultStore(mongomock.MongoClient().db)
    s.ensure_indexes()
    return s


def _doc(kind="binding", phase="Al", uid="u1", created="2026-01-01", **kw):
    return {"kind": kind, "phase": phase, "uid": uid, "created": created,
            "settings": {"preset": "test"}, **kw}


def test_insert_find_and_filters(store):
    store.insert({**_doc(uid="a", created="2026-01-02"), "work_key": "k1"})
    store.insert({**_doc(phase="LiAl", uid="b", created="2026-01-01"), "work_key": "k2"})
    store.insert({"kind": "barrier", "interface": "LiAl|LPSC", "phase_a": "LiAl",
                  "phase_b": "LPSC", "uid": "c", "created": "2026-01-03", "work_key": "k3"})
    assert [d["uid"] for d in store.find()] == ["b", "a", "c"]
    assert [d["uid"] for d in store.find(kind="binding")] == ["b", "a"]
    assert [d["uid"] for d in store.find(phase="LiAl")] == ["b", "c"]
    assert [d["uid"] for d in store.find(kind="barrier", phase="LPSC")] == ["c"]
    assert all("_id" not in d for d in store.find())
    assert store.keys() == {"k1", "k2", "k3"}


def test_same_key_is_stored_once(store):
    assert store.insert({**_doc(uid="first"), "work_key": "same"}) == "first"
    assert store.insert({**_doc(uid="second"), "work_key": "same"}) == "first"
    assert store.count() == 1
    assert store.get("same")["uid"] == "first"
    assert store.get("other") is None
    assert store.get("") is None


def test_work_key_lookup_and_metadata(store):
    store.insert(_doc(uid="x", work_key="wk"), meta={"fw_id": 7})
    found = store.get("wk")
    assert found["_fw_id"] == 7


def test_documents_stored_under_the_old_key_are_upgraded():
    s = ResultStore(mongomock.MongoClient().db)
    s.coll.insert_one(_doc(uid="old", _key="legacy"))
    assert s.get("legacy") is None
    s.ensure_indexes()
    assert s.get("legacy")["uid"] == "old"
    assert "_key" not in s.coll.find_one({"uid": "old"})
    assert s.keys() == {"legacy"}


def test_document_round_trip_drops_store_keys(store):
    from interphase_dft.schemas import doc_from_dict

    data = {"kind": "barrier", "interface": "A|B", "phase_a": "Al", "phase_b": "LPSC",
            "settings": {}, "images": [], "energies": [0.0, 0.3, 0.1],
            "path_coordinate": [0.0, 1.0, 2.0], "spline": {"x": [], "y": []},
            "barrier_forward": 0.3, "barrier_reverse": 0.2, "reaction_energy": 0.1,
            "converged": True, "fmax_final": 0.04, "stage": "dft", "structure_hash": "h"}
    uid = store.insert({**data, "work_key": "kb"}, meta={"fw_id": 3})
    doc = doc_from_dict(store.get("kb"))
    assert doc.barrier_forward == 0.3
    assert doc.uid == uid


def test_document_without_kind_rejected(store):
    with pytest.raises(StoreError, match="kind"):
        store.insert({"phase": "Al"})
