"""How a memory is laid out as a Qdrant point: its id, and its payload.

A point's payload holds everything a hit needs, so a search never makes a second request::

    memory_id        the memory's id (the point id is derived from it, see point_id)
    memory, hash     its text and the hash of the text
    user_id, agent_id, run_id
                     the scope ids; a key is absent when the record has none
    created_at, updated_at
                     canonical UTC ISO-8601 timestamps (always present)
    metadata         the metadata object, as it was given
    metadata_keys    the top-level metadata keys (``exists`` compiles to a match on it)
    metadata_lists   the top-level keys whose value is a list (conditions that must not
                     look into lists exclude these keys)

Payload indexes (on a server): the scope fields are keyword indexes marked as tenants,
``created_at`` / ``updated_at`` datetime indexes, ``hash``, ``metadata_keys`` and
``metadata_lists`` keyword indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from memsift.errors import FilterError, InvalidInputError
from memsift.filters import SCOPE_FIELDS, TIMESTAMP_FIELDS, canonical_timestamp, check_metadata
from memsift.interfaces import MemoryRecord

#: The namespace of the uuid5 point ids of memory ids that are not canonical UUIDs.
POINT_ID_NAMESPACE: Final = uuid.UUID("6f1c2b7e-3d4a-5e8f-9a0b-1c2d3e4f5a6b")
METADATA_KEYS: Final = "metadata_keys"
METADATA_LISTS: Final = "metadata_lists"
#: Payload indexes a memsift collection gets on a server: field -> kind.
PAYLOAD_INDEXES: Final[dict[str, str]] = {
    "user_id": "tenant",
    "agent_id": "tenant",
    "run_id": "tenant",
    "created_at": "datetime",
    "updated_at": "datetime",
    "hash": "keyword",
    METADATA_KEYS: "keyword",
    METADATA_LISTS: "keyword",
}


def point_id(memory_id: str) -> str:
    """The Qdrant point id of a memory: its id when that is a canonical UUID string (what
    memsift makes), else a uuid5 of it (the id itself is kept in the payload)."""
    text = str(memory_id)
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return str(uuid.uuid5(POINT_ID_NAMESPACE, text))
    return text if str(parsed) == text else str(uuid.uuid5(POINT_ID_NAMESPACE, text))


def metadata_path(key: str) -> str:
    """The payload path of a metadata key (keys are letters, digits, ``_`` and ``-``)."""
    return f"metadata.{key}"


def to_payload(record: MemoryRecord) -> dict[str, Any]:
    """The payload of ``record``; raises InvalidInputError for what cannot be stored exactly."""
    try:
        metadata = check_metadata(record.metadata or {})
    except FilterError as exc:
        raise InvalidInputError(f"memory {record.id!r}: {exc}") from None
    for name in ("id", "memory", "hash"):
        if not isinstance(getattr(record, name), str):
            raise InvalidInputError(f"memory {record.id!r}: {name} must be a string")
    payload: dict[str, Any] = {
        "memory_id": record.id,
        "memory": record.memory,
        "hash": record.hash,
    }
    for field in SCOPE_FIELDS:
        value = getattr(record, field)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInputError(f"memory {record.id!r}: {field} must be a string")
            payload[field] = value
    for field in TIMESTAMP_FIELDS:
        payload[field] = _check_timestamp(record, field)
    payload["metadata"] = metadata
    payload[METADATA_KEYS] = sorted(metadata)
    payload[METADATA_LISTS] = sorted(k for k, v in metadata.items() if isinstance(v, list))
    return payload


def _check_timestamp(record: MemoryRecord, field: str) -> str:
    value = getattr(record, field)
    problem = f"memory {record.id!r}: {field} must be a canonical UTC timestamp"
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{problem} (memsift.filters.canonical_timestamp), got {value!r}")
    try:
        canonical = canonical_timestamp(value)
    except FilterError:
        canonical = None
    if canonical != value:
        raise InvalidInputError(
            f"{problem} such as {canonical or '2026-03-03T12:00:00.000000+00:00'!r}, got "
            f"{value!r}: the store compares timestamps as instants, and returns them as stored"
        )
    return value


def from_payload(payload: Mapping[str, Any] | None) -> MemoryRecord:
    """The record a point's payload holds."""
    if not payload or "memory_id" not in payload:
        raise ValueError("not a memsift point: its payload has no memory_id")
    metadata = payload.get("metadata")
    return MemoryRecord(
        id=str(payload["memory_id"]),
        memory=str(payload.get("memory", "")),
        hash=str(payload.get("hash", "")),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        user_id=payload.get("user_id"),
        agent_id=payload.get("agent_id"),
        run_id=payload.get("run_id"),
        created_at=str(payload.get("created_at", "")),
        updated_at=str(payload.get("updated_at", "")),
    )


__all__ = [
    "METADATA_KEYS",
    "METADATA_LISTS",
    "PAYLOAD_INDEXES",
    "POINT_ID_NAMESPACE",
    "from_payload",
    "metadata_path",
    "point_id",
    "to_payload",
]
