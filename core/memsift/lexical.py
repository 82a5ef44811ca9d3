"""Lexical analysis shared by the keyword index of a store and the ``bm25`` reranker: text to
index terms.

An :class:`Analyzer` turns a text into terms in a fixed, documented order:

1. Unicode NFKC normalisation and case folding.
2. Tokens: numbers and dates are kept whole (``3.5``, ``1,000`` -> ``1000``, ``8:30``,
   ``2023-05-08``, ``5/8/2023``); words are runs of letters and digits (``1st``, ``covid``)
   with inner apostrophes, a possessive ``'s`` dropped and other apostrophes removed
   (``Kate's`` -> ``kate``, ``don't`` -> ``dont``); each CJK ideograph or kana is a token of
   its own (those scripts put no spaces between words).
3. Stop words (optional) are dropped: a built-in English list, or a list of your own.
4. Stemming (optional) with the Snowball stemmer of the configured language (the maintained
   ``snowballstemmer`` package; 30+ languages), then diacritics are removed (``café`` ->
   ``cafe``), so accented and plain spellings meet.

:attr:`Analyzer.signature` names all of that (format version, language, stemming, stop
words, as JSON). A store records the signature of the analyzer that filled its keyword index and
analyses queries with the same one; a different signature means the index must be rebuilt.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Bumped whenever tokenisation changes, so that stores rebuild their keyword index.
FORMAT = 1

_TOKEN = re.compile(
    r"""
    \d{1,3}(?:,\d{3})+(?:\.\d+)?        # 1,000 and 12,500.75: thousands separators
    | \d+(?:[.:/-]\d+)+                 # 3.5, 8:30, 2023-05-08, 5/8/2023
    | [\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]   # kana and CJK ideographs
    | (?:[^\W_]|_)+(?:['\u2019](?:[^\W_]|_)+)*                 # words, inner apostrophes
    """,
    re.VERBOSE,
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_APOSTROPHES = re.compile(r"['\u2019]")
_CACHE_SIZE = 100_000  # distinct tokens remembered per analyzer

_ENGLISH = """
    a about above after again against all am an and any are arent as at be because been
    before being below between both but by can cant cannot could couldnt did didnt do does
    doesnt doing dont down during each few for from further had hadnt has hasnt have havent
    having he hes her here heres hers herself him himself his how hows i im ive if in into
    is isnt it its itself lets me more most mustnt my myself no nor not of off on once only
    or other ought our ours ourselves out over own same shant she shes should shouldnt so
    some such than that thats the their theirs them themselves then there theres these they
    theyd theyll theyre theyve this those through to too under until up very was wasnt we
    were weve werent what whats when whens where wheres which while who whos whom why whys
    will with wont would wouldnt you youd youll youre youve your yours yourself yourselves
    oh ok okay yeah lol haha just also really
"""
#: English function words (pronouns, articles, auxiliaries, prepositions, conjunctions) and
#: chat fillers, written without apostrophes, as tokens are.
ENGLISH_STOP_WORDS = frozenset(_ENGLISH.split())

#: Languages with a built-in stop list.
STOP_WORDS = {"english": ENGLISH_STOP_WORDS}


def stemmer_languages() -> list[str]:
    """The languages the stemmer knows (Snowball's algorithm names)."""
    import snowballstemmer

    return sorted(snowballstemmer.algorithms())


def check_language(language: str) -> str:
    """``language`` if the stemmer knows it; ValueError listing the known ones otherwise."""
    known = stemmer_languages()
    if language not in known:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(known)}")
    return language


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


@dataclass(frozen=True)
class Analyzer:
    """Text to index terms (see the module docstring for the steps).

    ``stopwords``: True for the language's built-in list (none where memsift has none),
    False for none, or the words themselves.
    """

    language: str = "english"
    stemming: bool = True
    stopwords: bool | tuple[str, ...] = True
    _stem: Any = field(default=None, init=False, repr=False, compare=False)
    _stops: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _cache: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.stopwords, (list, tuple)):
            stops = frozenset(
                self._word(unicodedata.normalize("NFKC", w).casefold()) for w in self.stopwords
            )
        elif self.stopwords:
            stops = STOP_WORDS.get(self.language, frozenset())
        else:
            stops = frozenset()
        object.__setattr__(self, "_stops", stops)
        if self.stemming:
            import snowballstemmer

            stem = snowballstemmer.stemmer(check_language(self.language))
            object.__setattr__(self, "_stem", stem)

    @staticmethod
    def _word(token: str) -> str:
        if token.endswith(("'s", "\u2019s")):
            token = token[:-2]
        return _APOSTROPHES.sub("", token)

    def _term(self, token: str) -> str | None:
        """The index term of one token, or None for a stop word."""
        if token[0].isdigit() and not token.isalnum():  # a number or a date: kept whole
            return token.replace(",", "")
        word = self._word(token)
        if not word or word in self._stops:
            return None
        if self._stem is not None and not _CJK.match(word):
            word = self._stem.stemWord(word)
        return strip_diacritics(word)

    def term(self, token: str) -> str | None:
        """The index term of one token (a cached :meth:`_term`), or None for a stop word."""
        cache = self._cache
        try:
            return cache[token]
        except KeyError:
            pass
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        found = cache[token] = self._term(token)
        return found

    def terms(self, text: str) -> list[str]:
        """The index terms of ``text``, in order, repeats kept."""
        folded = unicodedata.normalize("NFKC", text).casefold()
        out = []
        term = self.term
        for token in _TOKEN.findall(folded):
            t = term(token)
            if t:
                out.append(t)
        return out

    def query_terms(self, text: str) -> list[str]:
        """The distinct index terms of a query, in their first order."""
        return list(dict.fromkeys(self.terms(text)))

    def joined(self, text: str) -> str:
        """The terms of ``text`` joined by single spaces (what a keyword index stores)."""
        return " ".join(self.terms(text))

    @property
    def signature(self) -> str:
        """What a store records to tell whether its index was built by this analyzer: its
        settings as canonical JSON (which :func:`parse_signature` reads back)."""
        stops: bool | list[str] = (
            sorted(self._stops) if isinstance(self.stopwords, tuple) else bool(self.stopwords)
        )
        spec = {
            "format": FORMAT,
            "language": self.language,
            "stemming": self.stemming,
            "stopwords": stops,
        }
        return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_signature(signature: str) -> Analyzer:
    """The analyzer of a recorded :attr:`Analyzer.signature`; ValueError if it is not one
    (another format, or not a signature at all)."""
    try:
        spec = json.loads(signature)
        if spec["format"] != FORMAT:
            raise ValueError(f"keyword analyzer format {spec['format']}, not {FORMAT}")
        stops = spec["stopwords"]
        return Analyzer(
            language=str(spec["language"]),
            stemming=bool(spec["stemming"]),
            stopwords=tuple(stops) if isinstance(stops, list) else bool(stops),
        )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a keyword analyzer signature: {signature[:80]!r}") from exc


def count_terms(
    query_terms: Iterable[str], documents: Iterable[Sequence[str]]
) -> tuple[list[dict[str, int]], dict[str, int]]:
    """How often each document (a list of terms) holds each query term it holds, and in how
    many documents each query term is (its document frequency)."""
    terms = set(query_terms)
    df: dict[str, int] = dict.fromkeys(terms, 0)
    counts = []
    for doc in documents:
        tf: dict[str, int] = {}
        for t in doc:
            if t in terms:
                tf[t] = tf.get(t, 0) + 1
        for t in tf:
            df[t] += 1
        counts.append(tf)
    return counts, df


def bm25_term_sum(
    tf: dict[str, int], length: int, idf: dict[str, float], *, k1: float, b: float, avg_len: float
) -> float:
    """Okapi BM25 of one document of ``length`` terms holding the query terms ``tf`` times,
    given each term's ``idf`` and the collection's average length."""
    norm = k1 * (1.0 - b + b * length / avg_len)
    return sum(idf[t] * f * (k1 + 1.0) / (f + norm) for t, f in tf.items())


def bm25_scores(
    query_terms: Sequence[str],
    documents: Iterable[Sequence[str]],
    *,
    k1: float,
    b: float,
) -> list[float]:
    """Okapi BM25 of each document (a list of terms) for ``query_terms``, with document
    frequencies and the average length taken from ``documents`` themselves."""
    docs = list(documents)
    n = len(docs)
    if n == 0 or not query_terms:
        return [0.0] * n
    avg_len = sum(len(d) for d in docs) / n or 1.0
    counts, df = count_terms(query_terms, docs)
    idf = {t: math.log(1.0 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}
    return [
        bm25_term_sum(tf, len(doc), idf, k1=k1, b=b, avg_len=avg_len)
        for doc, tf in zip(docs, counts)
    ]


__all__ = [
    "ENGLISH_STOP_WORDS",
    "FORMAT",
    "STOP_WORDS",
    "Analyzer",
    "bm25_scores",
    "bm25_term_sum",
    "check_language",
    "count_terms",
    "parse_signature",
    "stemmer_languages",
    "strip_diacritics",
]
