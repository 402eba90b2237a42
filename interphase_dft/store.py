"""Results store: result documents in their own collection of a (pymongo/mongomock) Database.

The collection lives next to FireWorks' collections in the LaunchPad database, so one
database holds the workflows and their results. No FireWorks import here.

Store-only metadata is kept under keys starting with ``_`` (``_key`` = the work key of
:func:`interphase_dft.campaign.work_key`, ``_fw_id``); :func:`interphase_dft.schemas.doc_from_dict`
drops them when a document is rebuilt.
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
        """Create the lookup indexes (idempotent)."""
        self.coll.create_index("kind")
        self.coll.create_index("phase")
        self.coll.create_index("interface")
        self.coll.create_index("task_key")
        self.coll.create_index("_key")

    def insert(self, doc: BaseModel | dict[str, Any], *, key: str = "",
               meta: dict[str, Any] | None = None) -> str:
        """Store ``doc`` and return its ``uid``.

        A document whose work ``key`` (or ``task_key``) is already stored is not stored
        twice: the existing ``uid`` is returned.
        """
        data = doc.model_dump(mode="json") if isinstance(doc, BaseModel) else dict(doc)
        if "kind" not in data:
            raise StoreError("a result document needs a 'kind' field; build it with the "
                             "schemas in interphase_dft.schemas")
        data.setdefault("uid", uuid.uuid4().hex)
        key = key or data.get("_key", "")
        if key:
            data["_key"] = key
        for name, value in (meta or {}).items():
            data[f"_{name.lstrip('_')}"] = value
        existing = self.get_by_task_key(key or data.get("task_key", ""))
        if existing is not None:
            return str(existing.get("uid", ""))
        self.coll.insert_one(data)
        return str(data.get("uid", ""))

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

    def get_by_task_key(self, key: str) -> dict[str, Any] | None:
        """The document stored under work key or ``task_key`` ``key`` (None if absent)."""
        if not key:
            return None
        return self.coll.find_one({"$or": [{"_key": key}, {"task_key": key}]}, {"_id": False})

    def keys(self) -> set[str]:
        """All work keys stored."""
        return {d["_key"] for d in self.coll.find({"_key": {"$exists": True}}, {"_key": True})}

    def count(self) -> int:
        return int(self.coll.count_documents({}))
