"""The datasets ``memsift eval`` reads: BEIR folders and LoCoMo-style conversation files.

- BEIR (a folder with ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``): every passage
  becomes one memory of a single scope; graded judgements (a grade of 0 is not relevant).
- LoCoMo-style conversation memory (a JSON list of samples; the REALTALK conversations in
  this layout are read as they are): every turn becomes one memory (``"<speaker>: <text>"``,
  metadata ``dia_id`` and ``session_date``) scoped by the sample's id; each question's
  evidence turns (dirty lists normalised by :func:`normalize_evidence`) are its relevant
  memories; adversarial questions (category 5) and questions left without evidence are
  skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsift.errors import InvalidInputError

LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_DIA = re.compile(r"D:?(\d+):(\d+)")


@dataclass
class Query:
    """One evaluation query: its text, scope, and relevant memory keys with their grades."""

    text: str
    scope: str
    relevant: dict[str, int]
    category: str = "all"


@dataclass
class Dataset:
    name: str
    kind: str
    documents: list[tuple[str, str, str, dict[str, Any]]]  # (scope, key, text, metadata)
    queries: list[Query]


# ----------------------------------------------------------------------------- loading


def load_dataset(path: str | Path) -> Dataset:
    """Read a BEIR folder or a LoCoMo-style JSON file; InvalidInputError if neither."""
    p = Path(path)
    if p.is_dir() and (p / "corpus.jsonl").exists():
        return _load_beir(p)
    if p.is_file() and p.suffix == ".json":
        return _load_locomo(p)
    raise InvalidInputError(
        f"{p} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) nor a "
        "LoCoMo-style .json file"
    )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _load_beir(folder: Path) -> Dataset:
    qrels: dict[str, dict[str, int]] = {}
    qrel_path = folder / "qrels" / "test.tsv"
    with qrel_path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            qid, doc_id, grade = parts[0], parts[1], int(parts[2])
            qrels.setdefault(qid, {})[doc_id] = grade
    texts = {q["_id"]: q["text"] for q in _jsonl(folder / "queries.jsonl")}
    scope = "beir"
    documents: list[tuple[str, str, str, dict[str, Any]]] = []
    for doc in _jsonl(folder / "corpus.jsonl"):
        title = doc.get("title") or ""
        text = f"{title}. {doc['text']}" if title else doc["text"]
        documents.append((scope, str(doc["_id"]), text, {"doc_id": str(doc["_id"])}))
    queries = [
        Query(text=texts[qid], scope=scope, relevant={d: g for d, g in rel.items() if g > 0})
        for qid, rel in sorted(qrels.items())
        if qid in texts and any(g > 0 for g in rel.values())
    ]
    return Dataset(name=folder.name, kind="beir", documents=documents, queries=queries)


def normalize_evidence(evidence: Any, known: set[str]) -> list[str]:
    """Split dirty evidence lists and keep the ids that exist (``D<session>:<turn>``)."""
    items = evidence if isinstance(evidence, list) else [evidence]
    out: list[str] = []
    for item in items:
        for token in re.split(r"[;,\s]+", str(item)):
            m = _DIA.fullmatch(token.strip())
            if m:
                dia = f"D{int(m.group(1))}:{int(m.group(2))}"
                if dia in known and dia not in out:
                    out.append(dia)
    return out


def _load_locomo(path: Path) -> Dataset:
    samples = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(samples, list):
        raise InvalidInputError(f"{path}: a LoCoMo file holds a JSON list of samples")
    documents: list[tuple[str, str, str, dict[str, Any]]] = []
    queries: list[Query] = []
    for sample in samples:
        scope = str(sample["sample_id"])
        conv = sample["conversation"]
        known: set[str] = set()
        sessions = sorted(
            int(k.split("_")[1])
            for k in conv
            if re.fullmatch(r"session_\d+", k) and isinstance(conv[k], list)
        )
        for n in sessions:
            date = str(conv.get(f"session_{n}_date_time", ""))
            for turn in conv[f"session_{n}"]:
                m = _DIA.fullmatch(str(turn.get("dia_id", "")))
                if not m:
                    continue
                dia = f"D{int(m.group(1))}:{int(m.group(2))}"
                text = str(turn.get("text", ""))
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                known.add(dia)
                documents.append(
                    (
                        scope,
                        dia,
                        f"{turn['speaker']}: {text}",
                        {"dia_id": dia, "session_date": date},
                    )
                )
        for qa in sample.get("qa", []):
            category = int(qa.get("category", 0))
            if category == 5:
                continue  # adversarial: no answer in the conversation
            evidence = normalize_evidence(qa.get("evidence", []), known)
            if not evidence:
                continue
            queries.append(
                Query(
                    text=str(qa["question"]),
                    scope=scope,
                    relevant=dict.fromkeys(evidence, 1),
                    category=LOCOMO_CATEGORIES.get(category, str(category)),
                )
            )
    return Dataset(name=path.stem, kind="locomo", documents=documents, queries=queries)


__all__ = [
    "LOCOMO_CATEGORIES",
    "Dataset",
    "Query",
    "load_dataset",
    "normalize_evidence",
]
