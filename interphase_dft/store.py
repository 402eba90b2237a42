"""Results store: result documents in their own collection of a (pymongo/mongomock) Database.

The collection lives next to FireWorks' collections in the LaunchPad database, so one
database holds the workflows and their results. No FireWorks import here.

Every document is found by its ``work_key`` (the key of the campaign work item that produced
it, :class:`interphase_dft.campaign.WorkItem`). Store-only metadata is kept under keys starting
with ``_`` (``_fw_id``); :func:`interphase_dft.schemas.doc_from_dict` drops them when a
document is rebuilt. Documents stored before the work key was a document field (under
``_key``) are upgraded in place by :meth:`ResultStore.ensure_indexes`.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from interphase_dft.errors import StoreError

COLLECTION = "interphase_results"
KINDS = ("binding", "barrier", "references", "analysis", "test")


class ResultStore:
    """Result documents in ``db[collection]``.

    Parameters
    ----------
    db : pymongo.database.Database or mongomock Database
        Usually ``launchpad.db``.
    collection : str
        Collection name (default ``interphase_results``).
    """

    def __init__(self, db: Any, collection: str = COLLECTION) -> None:
        self.db = db
        self.coll = db[collection]

    def ensure_indexes(self) -> None:
        """Create the lookup indexes and upgrade documents stored under ``_key`` (idempotent)."""
        for legacy in self.coll.find({"_key": {"$exists": True}, "work_key": {"$exists": False}},
                                     {"_id": True, "_key": True}):
            self.coll.update_one({"_id": legacy["_id"]}, {"$set": {"work_key": legacy["_key"]},
                                                          "$unset": {"_key": ""}})
        self.coll.create_index("kind")
        self.coll.create_index("phase")
        self.coll.create_index("interface")
        self.coll.create_index("work_key")

    def insert(self, doc: BaseModel | dict[str, Any], *,
               meta: dict[str, Any] | None = None) -> str:
        """Store ``doc`` and return its ``uid``.

        A document whose ``work_key`` is already stored is not stored twice: the existing
        ``uid`` is returned. ``meta`` entries are stored as ``_name``.
        """
        data = doc.model_dump(mode="json") if isinstance(doc, BaseModel) else dict(doc)
        if "kind" not in data:
            raise StoreError("a result document needs a 'kind' field; build it with the "
                             "schemas in interphase_dft.schemas")
        data.setdefault("uid", uuid.uuid4().hex)
        for name, value in (meta or {}).items():
            data[f"_{name.lstrip('_')}"] = value
        existing = self.get(data.get("work_key", ""))
        if existing is not None:
            return str(existing.get("uid", ""))
        self.coll.insert_one(data)
        return str(data.get("uid", ""))

    def replace(self, doc: BaseModel | dict[str, Any], *,
                meta: dict[str, Any] | None = None) -> str:
        """Store ``doc`` in place of every document under its ``work_key`` (a continued
        result, e.g. a barrier rerun with a larger budget) and return its ``uid``."""
        data = doc.model_dump(mode="json") if isinstance(doc, BaseModel) else dict(doc)
        if data.get("work_key"):
            self.coll.delete_many({"work_key": data["work_key"]})
        return self.insert(data, meta=meta)

    def find(self, kind: str | None = None, phase: str | None = None,
             interface: str | None = None) -> list[dict[str, Any]]:
        """Documents matching all given filters, oldest first (Mongo ``_id`` removed).

        ``phase`` matches binding documents of that phase and barriers involving it.
        """
        query: dict[str, Any] = {}
        if kind:
            query["kind"] = kind
        if phase:
            query["$or"] = [{"phase": phase}, {"phase_a": phase}, {"phase_b": phase}]
        if interface:
            query["interface"] = interface
        docs = list(self.coll.find(query, {"_id": False}))
        return sorted(docs, key=lambda d: str(d.get("created", "")))

    def get(self, work_key: str) -> dict[str, Any] | None:
        """The document stored under ``work_key`` (None if absent or empty)."""
        if not work_key:
            return None
        return self.coll.find_one({"work_key": work_key}, {"_id": False})

    def keys(self, where: dict[str, Any] | None = None) -> set[str]:
        """All work keys stored (of the documents matching the Mongo filter ``where``)."""
        query = {"work_key": {"$nin": [None, ""]}, **(where or {})}
        return {d["work_key"] for d in self.coll.find(query, {"work_key": True})}

    def count(self) -> int:
        return int(self.coll.count_documents({}))
