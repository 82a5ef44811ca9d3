"""`memsift eval`: dataset readers, metrics, and the off/on comparison end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memsift.cli import main
from memsift.cli.eval import (
    load_dataset,
    mrr_at,
    ndcg_at,
    normalize_evidence,
    recall_at,
)
from memsift.errors import InvalidInputError


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Lisbon", "text": "Lisbon is the capital of Portugal"},
        {"_id": "d2", "title": "", "text": "Green tea is a drink from China"},
        {"_id": "d3", "title": "Porto", "text": "Porto is a city in Portugal known for wine"},
        {"_id": "d4", "title": "", "text": "Coffee beans are roasted seeds"},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus))
    queries = [
        {"_id": "q1", "text": "capital of Portugal"},
        {"_id": "q2", "text": "tea drink"},
        {"_id": "q3", "text": "unjudged query"},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\nq2\td4\t0\n"
    )
    return folder


def write_locomo(path: Path) -> Path:
    sample = {
        "sample_id": "conv-1",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a cat named Miso"},
                {"speaker": "Ben", "dia_id": "D1:2", "text": "Nice! I started pottery class"},
            ],
            "session_2_date_time": "9:00 am on 10 May, 2023",
            "session_2": [
                {
                    "speaker": "Ana",
                    "dia_id": "D2:1",
                    "text": "Miso broke a vase",
                    "blip_caption": "a cat near a broken vase",
                },
            ],
            "observation": {"ignored": True},
        },
        "qa": [
            {
                "question": "What is Ana's cat called?",
                "answer": "Miso",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {
                "question": "What did the cat break?",
                "answer": "a vase",
                "evidence": ["D2:01; D:1:1", "D9:9"],
                "category": 1,
            },
            {"question": "Trick", "adversarial_answer": "x", "evidence": ["D1:2"], "category": 5},
            {"question": "No evidence", "answer": "x", "evidence": ["D7:7"], "category": 2},
        ],
    }
    path.write_text(json.dumps([sample]))
    return path


def test_beir_reader(tmp_path: Path) -> None:
    data = load_dataset(write_beir(tmp_path / "beir"))
    assert data.kind == "beir" and len(data.documents) == 4
    assert [q.text for q in data.queries] == ["capital of Portugal", "tea drink"]
    assert data.queries[0].relevant == {"d1": 2, "d3": 1}
    assert data.queries[1].relevant == {"d2": 1}  # grade 0 is not relevant
    assert data.documents[0][2] == "Lisbon. Lisbon is the capital of Portugal"


def test_locomo_reader_normalises_dirty_evidence(tmp_path: Path) -> None:
    data = load_dataset(write_locomo(tmp_path / "conv.json"))
    assert data.kind == "locomo"
    assert [d[1] for d in data.documents] == ["D1:1", "D1:2", "D2:1"]
    scope, _, text, meta = data.documents[2]
    assert scope == "conv-1" and text.startswith("Ana: Miso broke a vase")
    assert "broken vase" in text and meta["session_date"] == "9:00 am on 10 May, 2023"
    assert [(q.text, q.category) for q in data.queries] == [
        ("What is Ana's cat called?", "single-hop"),
        ("What did the cat break?", "multi-hop"),
    ]
    assert data.queries[1].relevant == {"D2:1": 1, "D1:1": 1}
    assert normalize_evidence("D30:05, D8:6;D9:17 junk", {"D30:5", "D8:6"}) == ["D30:5", "D8:6"]


def test_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="neither a BEIR folder"):
        load_dataset(tmp_path)


def test_metrics() -> None:
    rel = {"a": 2, "b": 1}
    assert recall_at(["x", "a", "b"], rel, 2) == 0.5
    assert mrr_at(["x", "a"], rel, 10) == 0.5
    assert mrr_at(["x", "y"], rel, 10) == 0.0
    assert ndcg_at(["a", "b"], rel, 10) == pytest.approx(1.0)
    assert 0 < ndcg_at(["b", "a"], rel, 10) < 1.0


@pytest.mark.parametrize("kind", ["beir", "locomo"])
def test_eval_command_end_to_end(tmp_path: Path, kind: str) -> None:
    dataset = write_beir(tmp_path / "b") if kind == "beir" else write_locomo(tmp_path / "c.json")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"embedder": {"provider": "hashing"}}))
    out = tmp_path / "out.json"
    args = [
        "eval",
        str(dataset),
        "--config",
        str(config),
        "--json",
        str(out),
        "--k",
        "1",
        "--k",
        "3",
        "--path",
        str(tmp_path / "store"),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["kind"] == kind and report["queries"] == 2
    for label in ("off", "on"):
        metrics = report["runs"][label]["metrics"]
        assert set(metrics) >= {"recall@1", "recall@3", "mrr@3"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
        assert report["runs"][label]["latency_ms"]["p50"] > 0
    assert report["runs"]["on"]["rerank_failures"] == 0
    if kind == "beir":
        assert "ndcg@3" in report["runs"]["off"]["metrics"]
    else:
        assert set(report["runs"]["off"]["per_category"]) == {"single-hop", "multi-hop"}
    # a second run reuses the filled store
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0
    assert json.loads(out.read_text())["runs"]["off"]["metrics"] == report["runs"]["off"]["metrics"]
