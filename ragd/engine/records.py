"""Document <-> LMDB record (msgpack dict) conversion. Short keys: millions of records."""
from __future__ import annotations

from ragd.domain import Document


def to_record(doc: Document, chunk_ids: list[int]) -> dict:
    return {"v": doc.version, "ti": doc.title, "tx": doc.text, "p": doc.project_id, "ty": doc.type,
            "pr": doc.is_private, "a": doc.author_id, "u": doc.updated_at_us, "m": doc.metadata,
            "vw": doc.viewer_ids, "c": chunk_ids, **_grant_fields(doc)}


def _grant_fields(doc: Document) -> dict:
    """The fields grants read, only when set: records of documents without them
    stay as they were (and records written before these fields existed read as unset)."""
    out: dict = {}
    if doc.tracker_id:
        out["tr"] = doc.tracker_id
    if doc.owner_ids:
        out["ow"] = doc.owner_ids
    if doc.private_note:
        out["pn"] = True
    return out


def tombstone(version: int) -> dict:
    """Marks a versioned delete, so that an older upsert arriving later stays deleted."""
    return {"v": version, "del": True, "c": []}


def is_tombstone(rec: dict | None) -> bool:
    return bool(rec and rec.get("del"))


def from_record(doc_id: str, rec: dict, with_text: bool = True) -> Document:
    return Document(id=doc_id, text=rec["tx"] if with_text else "", title=rec["ti"], project_id=rec["p"],
                    type=rec["ty"], is_private=rec["pr"], author_id=rec["a"], updated_at_us=rec["u"],
                    version=rec["v"], metadata=dict(rec["m"]), viewer_ids=list(rec["vw"]),
                    tracker_id=rec.get("tr", 0), owner_ids=list(rec.get("ow", ())), private_note=rec.get("pn", False))
