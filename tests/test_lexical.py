"""The analyzer that the keyword index and the bm25 reranker share: tokens, stop words,
stemming, numbers and dates kept whole, and the signature a store records."""

from __future__ import annotations

import pytest

from memsift.lexical import (
    ENGLISH_STOP_WORDS,
    Analyzer,
    bm25_scores,
    check_language,
    parse_signature,
)


def test_words_are_folded_stemmed_and_stop_words_dropped() -> None:
    terms = Analyzer().terms("What are Kate's HOBBIES? She loves skiing and hiking!")
    assert terms == ["kate", "hobbi", "love", "ski", "hike"]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("on 2023-05-08 at 8:30", ["2023-05-08", "8:30"]),
        ("paid $1,200.50 for 3.5 kg", ["1200.50", "3.5"]),
        ("due 5/8/2023.", ["5/8/2023"]),
        ("the 1st and 22nd", ["1st", "22nd"]),
    ],
)
def test_numbers_and_dates_are_kept_whole(text: str, kept: list[str]) -> None:
    terms = Analyzer().terms(text)
    assert all(k in terms for k in kept), terms


def test_diacritics_are_removed_after_stemming() -> None:
    assert Analyzer().terms("café naïve") == Analyzer().terms("cafe naive")
    assert Analyzer(language="german").terms("Die Häuser") == ["die", "haus"]  # no German list


def test_options_turn_steps_off_and_take_own_stop_words() -> None:
    raw = Analyzer(stemming=False, stopwords=False)
    assert raw.terms("The runs running") == ["the", "runs", "running"]
    own = Analyzer(stopwords=("Runs", "the"))
    assert own.terms("The runs running") == ["run"]
    assert "the" in ENGLISH_STOP_WORDS and "kate" not in ENGLISH_STOP_WORDS


def test_cjk_ideographs_are_tokens_of_their_own() -> None:
    assert Analyzer().terms("我喜欢 tea") == ["我", "喜", "欢", "tea"]


def test_query_terms_are_distinct_in_order() -> None:
    assert Analyzer().query_terms("hike, hiking, hikes in Miami") == ["hike", "miami"]


@pytest.mark.parametrize(
    "analyzer",
    [Analyzer(), Analyzer(language="french", stemming=False), Analyzer(stopwords=("A", "b"))],
)
def test_the_signature_names_the_settings_and_reads_back(analyzer: Analyzer) -> None:
    again = parse_signature(analyzer.signature)
    assert again.signature == analyzer.signature
    assert again.terms("Les maisons a b") == analyzer.terms("Les maisons a b")


def test_signatures_differ_when_tokenisation_does() -> None:
    sigs = {
        Analyzer().signature,
        Analyzer(stemming=False).signature,
        Analyzer(stopwords=False).signature,
        Analyzer(language="spanish").signature,
    }
    assert len(sigs) == 4
    with pytest.raises(ValueError, match="signature"):
        parse_signature("not json")
    with pytest.raises(ValueError, match="format"):
        parse_signature('{"format": 999, "language": "english"}')


def test_unknown_language_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="english"):
        check_language("klingon")


def test_bm25_over_documents() -> None:
    docs = [["green", "tea"], ["green", "tea", *["x"] * 20], ["tea", "tea"], ["coffee"]]
    short, long_, twice, none = bm25_scores(["tea"], docs, k1=1.2, b=0.75)
    assert twice > short > long_ > none == 0.0
    assert bm25_scores([], docs, k1=1.2, b=0.75) == [0.0] * 4
