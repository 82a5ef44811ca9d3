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


# --------------------------------------------------------------------------- --sweep


def sweep_args(tmp_path: Path, dataset: Path, *sweeps: str) -> list[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"embedder": {"provider": "hashing"}}))
    args = ["eval", str(dataset), "--config", str(config), "--path", str(tmp_path / "store")]
    for s in sweeps:
        args += ["--sweep", s]
    return [*args, "--json", str(tmp_path / "out.json")]


def test_parse_sweep_resolves_keys_to_their_section() -> None:
    from memsift.builtin.bm25 import BM25Config
    from memsift.builtin.faiss import FaissStoreConfig
    from memsift.cli.sweep import parse_sweep, settings

    sweep = parse_sweep(
        "rerank=off,on weight=0.2,0.5 pool=30 keyword_stemming=true,false",
        BM25Config,
        FaissStoreConfig,
    )
    assert [(a.section, a.key, a.values) for a in sweep.axes] == [
        ("search", "rerank", (False, True)),
        ("reranker", "weight", (0.2, 0.5)),
        ("reranker", "top_k", (30,)),
        ("store", "keyword_stemming", (True, False)),
    ]
    assert len(settings(sweep)) == 8
    assert parse_sweep("search.fusion=rrf,interleave", BM25Config, FaissStoreConfig).axes[
        0
    ].values == ("rrf", "interleave")
    for bad, message in [
        ("wieght=0.1", "unknown --sweep key 'wieght'"),
        ("weight", "expected KEY=V1,V2"),
        ("nope.weight=1", "unknown --sweep section"),
        ("reranker.hybrid=on", "reranker keys"),
        ("weight=1 weight=2", "given twice"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            parse_sweep(bad, BM25Config, FaissStoreConfig)


def test_sweep_end_to_end_on_one_store(tmp_path: Path) -> None:
    dataset = write_locomo(tmp_path / "c.json")
    args = sweep_args(
        tmp_path,
        dataset,
        "rerank=on hybrid=off,on weight=0.2,0.8",
        "rerank=on keyword_stopwords=true,false",
    )
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "vector order (reference)" in result.output
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["reference"]["metrics"]["recall@1"] >= 0
    first, second = report["sweeps"]
    assert first["sweep"] == "rerank=on hybrid=off,on weight=0.2,0.8"
    assert [r["setting"] for r in first["rows"]] == [
        {"rerank": True, "hybrid": h, "weight": w} for h in (False, True) for w in (0.2, 0.8)
    ]
    assert all(r["rerank_failures"] == 0 for r in first["rows"])
    assert [r["setting"]["keyword_stopwords"] for r in second["rows"]] == [True, False]


def test_a_bad_sweep_is_an_error_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memsift.cli import eval as eval_mod

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store was filled before the options were checked")

    monkeypatch.setattr(eval_mod, "fill_store", never)
    args = sweep_args(tmp_path, write_locomo(tmp_path / "c.json"), "wieght=0.1,0.2")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "unknown --sweep key 'wieght'" in result.output


def test_plot_without_matplotlib_is_reported_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    from memsift.cli import eval as eval_mod

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("memsift eval embedded the dataset before checking --plot")

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(eval_mod, "fill_store", never)
    monkeypatch.setattr(eval_mod, "load_dataset", never)
    args = [*sweep_args(tmp_path, write_locomo(tmp_path / "c.json")), "--plot", "x.png"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--plot needs matplotlib: pip install 'memsift[plot]'" in result.output


def test_plot_per_sweep(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dataset = write_beir(tmp_path / "b")
    plot = tmp_path / "sweep.png"
    args = [*sweep_args(tmp_path, dataset, "rerank=on weight=0.2,0.8", "rerank=off,on")]
    result = CliRunner().invoke(main, [*args, "--plot", str(plot)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("sweep-1.png", "sweep-2.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "nDCG@10" in result.output or "nDCG@1" in result.output
