"""Answers asked as JSON with a schema, when the llm provider says it takes one: the request
carries the schema, good answers are read, bad ones are errors of the stage with their
reason, and a provider without the capability (or a server found to refuse every JSON
format) gets the free-text prompt."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from llm_fakes import QUERY, TEXT_ONLY, json_tokens, judge, prompt_data, scores_by_text
from memsift_llm import LLMReranker

from memsift import RerankError
from memsift.config import resolve_section
from memsift.interfaces import Candidate
from memsift.records import MemoryRecord
from memsift.registry import get_reranker
from memsift.search import RerankScores
from memsift.testing.fake_openai_api import FakeOpenAI, Reply
from memsift.testing.fake_rerank_api import relevance

Make = Callable[..., LLMReranker]
DOCS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
]
ON_THE_SCALE = {"capabilities": {"logprobs": False}}


def score(reranker: LLMReranker, docs: list[str], mode: str) -> RerankScores:
    candidates = [
        Candidate(text=d, vector_score=0.5, record=MemoryRecord(id=f"m{i}", memory=d, hash=f"h{i}"))
        for i, d in enumerate(docs)
    ]
    if mode == "sync":
        found = reranker.score_candidates(QUERY, candidates)
    else:
        found = asyncio.run(reranker.ascore_candidates(QUERY, candidates))
    assert isinstance(found, RerankScores)
    return found


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def schema_of(body: dict[str, Any]) -> dict[str, Any]:
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema: dict[str, Any] = fmt["json_schema"]["schema"]
    return schema


# ---------------------------------------------------------------------- the requests


def test_yes_no_is_asked_with_a_schema_and_read_from_the_log_probs(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    table = {d: round(0.2 + 0.3 * i, 2) for i, d in enumerate(DOCS)}
    fake_api.responder = judge(scores_by_text(table))
    scores = score(make_reranker(), DOCS, mode)
    assert list(scores) == pytest.approx([table[d] for d in DOCS])
    assert scores.details["method"] == "logprobs"
    assert scores.details["answer_format"] == "json_schema"
    for body in fake_api.chat_requests():
        assert body["logprobs"] is True
        relevant = schema_of(body)["properties"]["relevant"]
        assert relevant == {"type": "string", "enum": ["yes", "no"]}
        assert schema_of(body)["required"] == ["relevant"]
        assert '{"relevant": "yes"}' in body["messages"][0]["content"]


def test_the_scale_is_asked_with_a_schema_of_integers_0_to_10(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    scores = score(make_reranker(llm=ON_THE_SCALE), DOCS, mode)
    assert list(scores) == pytest.approx([round(10 * relevance(QUERY, d)) / 10 for d in DOCS])
    assert scores.details["method"] == "scale"
    assert scores.details["answer_format"] == "json_schema"
    for body in fake_api.chat_requests():
        assert "logprobs" not in body
        field = schema_of(body)["properties"]["score"]
        assert field["type"] == "integer" and field["enum"] == list(range(11))
        assert (field["minimum"], field["maximum"]) == (0, 10)
        assert schema_of(body)["additionalProperties"] is False


def test_a_window_is_asked_with_a_schema_of_its_ids(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    docs = [f"Memory {i}: Alice visited place {i} in Lisbon." for i in range(7)]
    scores = score(make_reranker(mode="listwise", window_size=4, step=2), docs, mode)
    assert all(0.0 < s <= 1.0 for s in scores) and len(set(scores)) == 7
    assert scores.details["method"] == "permutation"
    assert scores.details["answer_format"] == "json_schema"
    bodies = fake_api.chat_requests()
    assert len(bodies) == 3
    for body in bodies:
        ranking = schema_of(body)["properties"]["ranking"]
        count = len(prompt_data(body)[1])
        assert ranking["items"] == {"type": "integer", "enum": list(range(1, count + 1))}
        assert (ranking["minItems"], ranking["maxItems"]) == (1, count)
        assert '{"ranking": [' in body["messages"][0]["content"]


def test_a_json_ranking_is_repaired_like_a_text_one(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    fake_api.responder = lambda body: Reply(json.dumps({"ranking": [3, 3, 1]}))
    docs = [f"Memory {i}" for i in range(4)]
    scores = score(make_reranker(mode="listwise"), docs, mode)
    assert list(scores) == pytest.approx([3 / 4, 2 / 4, 4 / 4, 1 / 4])


# ---------------------------------------------------------------------- bad answers


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"score": 11}', "11 is not one of"),
        ('{"score": "7"}', "expected integer"),
        ('{"score": 7, "why": "close"}', "unexpected key 'why'"),
        ("I would say 7", "the answer is not JSON"),
    ],
    ids=["out of range", "a string", "another key", "not json"],
)
def test_a_bad_json_score_is_an_error_with_its_reason(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str, answer: str, words: str
) -> None:
    def respond(body: dict[str, Any]) -> Reply | None:
        if prompt_data(body)[1] == [DOCS[1]]:
            return Reply(answer)
        return None

    fake_api.responder = respond
    with pytest.raises(RerankError, match="candidate 1") as info:
        score(make_reranker(llm=ON_THE_SCALE), DOCS, mode)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("answer", "words"),
    [('{"ranking": [9, 1]}', "9 is not one of"), ('{"ranking": []}', "fewer than")],
)
def test_a_bad_json_ranking_is_an_error_with_its_reason(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str, answer: str, words: str
) -> None:
    fake_api.responder = lambda body: Reply(answer)
    with pytest.raises(RerankError, match="window 1-3") as info:
        score(make_reranker(mode="listwise"), DOCS, mode)
    assert words in str(info.value)


def test_a_json_yes_no_whose_tokens_hold_neither_is_an_error(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    # the text is valid, but no token of it reads yes or no (split as "y" "es")
    tokens = [{'{"relevant": "y': 0.0}, {"es": math.log(0.9)}, {'"}': 0.0}]
    fake_api.responder = lambda body: Reply(tokens=tokens)
    with pytest.raises(RerankError, match="has no yes or no"):
        score(make_reranker(), DOCS, mode)


# ------------------------------------------------ the reranker's own reader (no provider check)


def scripted(provider: str, **config: Any) -> LLMReranker:
    section = resolve_section(
        "reranker",
        {"provider": "llm_reranker", "config": {"provider": provider, "llm": None, **config}},
    )
    reranker = get_reranker("llm_reranker").build(section.config)
    assert isinstance(reranker, LLMReranker)
    return reranker


def scripted_with(provider: str, answers: dict[str, str], **options: Any) -> LLMReranker:
    llm = {"provider": provider, "config": {"json_schema": True, "answers": answers}}
    section = resolve_section(
        "reranker", {"provider": "llm_reranker", "config": {"llm": llm, **options}}
    )
    reranker = get_reranker("llm_reranker").build(section.config)
    assert isinstance(reranker, LLMReranker)
    return reranker


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"score": 11}', "not a number from 0 to 10"),
        ('{"score": 7.5}', "not a number from 0 to 10"),
        ('{"score": true}', "not a number from 0 to 10"),
        ('{"score": 7, "note": "x"}', 'not the JSON object {"score"'),
        ("[7]", 'not the JSON object {"score"'),
        ("7", 'not the JSON object {"score"'),
        ("Score: 7", 'not the JSON object {"score"'),
    ],
)
def test_the_reranker_reads_a_json_score_strictly_itself(
    fake_llm_provider: str, mode: str, answer: str, words: str
) -> None:
    reranker = scripted_with(fake_llm_provider, {DOCS[2]: answer})
    assert reranker.structured and reranker.method == "scale"
    with pytest.raises(RerankError, match="candidate 2") as info:
        score(reranker, DOCS, mode)
    assert words in str(info.value)


def test_a_provider_that_takes_a_schema_gets_it(fake_llm_provider: str, mode: str) -> None:
    import scripted_llm

    scores = score(scripted_with(fake_llm_provider, {DOCS[0]: '{"score": 9}'}), DOCS, mode)
    assert scores[0] == pytest.approx(0.9)
    assert scores.details["answer_format"] == "json_schema"
    names = {f["json_schema"]["name"] for f in scripted_llm.ScriptedLLM.formats if f is not None}
    assert names == {"relevance_score"} and None not in scripted_llm.ScriptedLLM.formats


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"ranking": [4, 1]}', "id 4, outside 1..3"),
        ('{"ranking": []}', "not a ranking of ids"),
        ('{"ranking": ["1"]}', "not a ranking of ids"),
        ('{"order": [1, 2, 3]}', 'not the JSON object {"ranking"'),
    ],
)
def test_the_reranker_reads_a_json_ranking_strictly_itself(
    fake_llm_provider: str, mode: str, answer: str, words: str
) -> None:
    from scripted_llm import WINDOW

    reranker = scripted_with(fake_llm_provider, {WINDOW: answer}, mode="listwise")
    with pytest.raises(RerankError, match="window 1-3") as info:
        score(reranker, DOCS, mode)
    assert words in str(info.value)


# ---------------------------------------------------------------------- no capability


def test_a_provider_without_the_capability_gets_the_free_text_prompt(
    fake_llm_provider: str, mode: str
) -> None:
    import scripted_llm

    reranker = scripted(fake_llm_provider)
    assert not reranker.structured
    scores = score(reranker, DOCS, mode)
    assert list(scores) == pytest.approx([round(10 * relevance(QUERY, d)) / 10 for d in DOCS])
    assert scores.details["answer_format"] == "text"
    assert scripted_llm.ScriptedLLM.formats == [None] * len(DOCS)


def test_an_openai_server_without_json_formats_gets_free_text(
    make_reranker: Make, fake_api: FakeOpenAI, mode: str
) -> None:
    scores = score(
        make_reranker(llm={"capabilities": {**TEXT_ONLY, "logprobs": False}}), DOCS, mode
    )
    assert scores.details == {**scores.details, "method": "scale", "answer_format": "text"}
    for body in fake_api.chat_requests():
        assert "response_format" not in body
        assert "exactly one integer from 0" in body["messages"][0]["content"]
        assert "JSON" not in body["messages"][0]["content"]


def test_capabilities_learned_from_the_server_are_read_before_each_request(
    make_reranker: Make, fake_api: FakeOpenAI
) -> None:
    # a server that refuses json_schema: the provider asks json_object with the schema
    # (capabilities: json_schema False, json_mode True), the reranker keeps asking for JSON
    fake_api.supports_json_schema = False
    reranker = make_reranker(llm=ON_THE_SCALE)
    assert reranker.structured, "detection: None means 'try it'"
    first = score(reranker, DOCS, "sync")
    assert first.details["answer_format"] == "json_schema"
    assert list(first) == pytest.approx([round(10 * relevance(QUERY, d)) / 10 for d in DOCS])
    caps = reranker.llm.capabilities
    assert (caps.json_schema, caps.json_mode) == (False, True) and reranker.structured
    fake_api.reset()
    fake_api.responder = judge()
    fake_api.supports_json_schema = False
    again = score(reranker, DOCS[:1], "sync")
    assert again.details["answer_format"] == "json_schema"
    (body,) = fake_api.chat_requests()
    assert body["response_format"]["type"] == "json_object" and "schema" in body["response_format"]


def test_a_server_found_to_refuse_every_json_format_gets_free_text_next(
    make_reranker: Make, fake_api: FakeOpenAI
) -> None:
    fake_api.supports_json_schema = False
    fake_api.supports_json_object = False
    reranker = make_reranker(llm=ON_THE_SCALE)
    first = score(reranker, DOCS[:1], "sync")
    # asked for JSON, answered by instruction (the provider checked it against the schema)
    assert first.details["answer_format"] == "json_schema"
    assert first[0] == pytest.approx(round(10 * relevance(QUERY, DOCS[0])) / 10)
    assert not reranker.structured, "the provider learned that the server takes no JSON format"
    fake_api.reset()
    fake_api.responder = judge()
    later = score(reranker, DOCS, "sync")
    assert later.details["answer_format"] == "text"
    assert not any("response_format" in b for b in fake_api.chat_requests())
    assert list(later) == pytest.approx([round(10 * relevance(QUERY, d)) / 10 for d in DOCS])


def test_json_tokens_read_as_the_fake_sends_them() -> None:
    # the helper the fakes share: the chosen tokens make the JSON answer
    tokens = json_tokens("relevant", {"yes": math.log(0.3), "no": math.log(0.7)})
    text = "".join(max(t, key=lambda k: t[k]) for t in tokens)
    assert json.loads(text) == {"relevant": "no"}
