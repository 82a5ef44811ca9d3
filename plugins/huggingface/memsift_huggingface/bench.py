"""Benchmark: memsift's rerank stage vs the plain transformers forward pass (local mode).

A cross-encoder of the real ms-marco-MiniLM-L-6 architecture (BERT, vocab 30522, hidden
384, 6 layers, 12 heads, intermediate 1536, one label) with random weights is saved to a
temporary folder with a WordPiece tokenizer that knows every word of the benchmark texts
(so token counts are those of a real vocabulary). A 30-candidate pool is then scored,
interleaved, by (a) what one would write with transformers alone -- tokenise the (query,
memory) pairs, one forward pass under ``torch.inference_mode()`` -- and (b) the search
pipeline's :class:`memsift.search.RerankStage` with the ``huggingface`` reranker in the
local mode, on the same tokenizer and model objects. Random weights are fine: only time is
measured.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

QUERY = "which city did alice move to and what does she do for a living"
POOL = [
    "Alice moved to Lisbon in March and started working as a nurse at the city hospital.",
    "Bob prefers green tea over coffee in the morning, especially before long meetings.",
    "The quarterly report for the finance team is due on Friday at noon.",
    "Alice's sister lives in Porto and visits her every second weekend.",
    "Our team meeting moved from Monday to Tuesday at 10am because of the holiday.",
    "Carol is allergic to peanuts and always checks the menu before ordering.",
    "Alice said she misses the rainy weather of Amsterdam, where she grew up.",
    "The car broke down on the highway near Coimbra, and the repair took two days.",
    "Dan is training for a marathon in October and runs five times a week.",
    "Alice adopted a grey cat named Pixel shortly after she arrived in Lisbon.",
    "The project deadline was extended by two weeks after the client asked for changes.",
    "Eve recommended a small Italian restaurant near the river for Friday dinner.",
    "Alice works night shifts at the hospital on Wednesdays and Thursdays.",
    "Frank is learning Portuguese with an app and practises for twenty minutes a day.",
    "The office wifi password changes on the first day of every month.",
    "Alice plans to take a cooking class to learn how to make pastel de nata.",
    "Grace moved to Berlin last year to join a startup that builds bicycles.",
    "Henry's birthday is on the twelfth of June and he likes chocolate cake.",
    "Alice is saving money to buy a small flat with a balcony near the sea.",
    "The library closes at eight on weekdays and at five on Saturdays.",
    "Ivy prefers window seats on flights and always travels with a paper book.",
    "Alice's favourite band is playing in Lisbon in September and she bought tickets.",
    "Jack fixed the leaking kitchen tap himself after watching a video tutorial.",
    "The dentist appointment was rescheduled to next Thursday at 3pm.",
    "Alice volunteers at an animal shelter on Sunday mornings.",
    "Kate is writing a novel about a lighthouse keeper on a remote island.",
    "Leo needs to renew his passport before the trip to Brazil in December.",
    "Alice told Mia that the hospital offered her a permanent contract as a nurse.",
    "Mia is vegetarian and does not eat fish or seafood.",
    "The building's elevator will be under maintenance all of next week.",
]

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD = re.compile(r"\w+|[^\w\s]")


def build_minilm_cross_encoder(folder: Path) -> Path:
    """Save a random-weight cross-encoder of the ms-marco-MiniLM-L-6 shape into ``folder``."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tf: Any = transformers  # its classes take **kwargs that type checkers do not follow

    words = sorted({w.lower() for text in [QUERY, *POOL] for w in _WORD.findall(text)})
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = _SPECIALS + [w for w in words if w not in _SPECIALS]
    vocab += [c for c in letters if c not in vocab] + [f"##{c}" for c in letters]
    ids = {token: i for i, token in enumerate(vocab)}
    backend = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        model_max_length=512,
    )
    config = tf.BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(0)
    tf.BertForSequenceClassification(config).save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(folder))
    return folder


def _hits() -> list[Any]:
    from memsift.interfaces import MemoryRecord, VectorHit

    return [
        VectorHit(
            record=MemoryRecord(id=f"m{i}", memory=text, hash=f"bench-{i}"),
            score=0.9 - i * 0.01,
        )
        for i, text in enumerate(POOL)
    ]


class _Timed:
    """Wraps a callable and keeps the duration of its last call, in ms."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.last_ms = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.last_ms = (time.perf_counter() - start) * 1000


def summarize(direct: list[float], stage: list[float], inner: list[float]) -> dict[str, float]:
    """Medians and ratios of interleaved samples (``inner``: the model call inside ``stage``)."""
    a = statistics.median(direct)
    b = statistics.median(stage)
    return {
        "direct_ms": round(a, 3),
        "stage_ms": round(b, 3),
        "ratio": round(b / a, 4),
        "paired_ratio": round(statistics.median(y / x for x, y in zip(direct, stage)), 4),
        "overhead_ms": round(statistics.median(y - z for y, z in zip(stage, inner)), 4),
        "inner_ratio": round(statistics.median(y / z for y, z in zip(stage, inner)), 5),
    }


def bench_rerank_overhead(repeats: int = 20) -> dict[str, float]:
    """Median ms of a plain transformers forward pass vs memsift's rerank stage, 30 pairs.

    (a) and (b) run back to back, alternating which goes first. Returns ``direct_ms`` (a:
    tokenise + forward), ``stage_ms`` (b, ``RerankOutcome.duration_ms``), ``ratio`` (median
    b / median a; the target is at most 1.05), ``paired_ratio`` (median of b/a per round,
    steadier on a noisy machine), ``overhead_ms`` (median of b minus the same tokenise +
    forward work timed inside it: what memsift adds), ``inner_ratio`` (median of b over that
    work, per round: the ratio with the machine's noise taken out), ``candidates``, ``repeats`` and
    ``threads`` (torch's intra-op threads).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    import torch

    from memsift.search import RerankStage
    from memsift_huggingface.config import HuggingFaceRerankerConfig
    from memsift_huggingface.reranker import HuggingFaceReranker
    from memsift_huggingface.runtime import MODEL_CACHE

    hits = _hits()
    with tempfile.TemporaryDirectory(prefix="memsift-bench-hf-") as tmp:
        folder = build_minilm_cross_encoder(Path(tmp))
        config = HuggingFaceRerankerConfig(model=str(folder), device="cpu", local_files_only=True)
        reranker = HuggingFaceReranker(config)
        loaded = reranker._local
        assert loaded is not None
        tokenizer, model = loaded.tokenizer, loaded.model  # (a) uses the very same objects
        # (b)'s model work is the tokenizer call plus the forward pass: time both inside it
        tokenize, forward = _Timed(tokenizer.__call__), _Timed(model.forward)
        loaded.tokenizer = _TokenizerProxy(tokenizer, tokenize)
        model.forward = forward
        stage = RerankStage.build("huggingface", reranker)

        def direct() -> float:
            start = time.perf_counter()
            with torch.inference_mode():
                batch = tokenizer(
                    [QUERY] * len(POOL),
                    POOL,
                    padding=True,
                    truncation=True,
                    max_length=config.max_length,
                    return_tensors="pt",
                )
                model(**batch).logits[:, 0].tolist()
            return (time.perf_counter() - start) * 1000

        def via_stage() -> tuple[float, float]:
            outcome = stage.run(QUERY, hits)
            if not outcome.applied:
                raise RuntimeError(f"the rerank stage failed: {outcome.error}")
            return outcome.duration_ms, tokenize.last_ms + forward.last_ms

        try:
            for _ in range(2):  # warm-up: allocator, kernels, tokenizer caches
                direct()
                via_stage()
            direct_ms: list[float] = []
            stage_ms: list[float] = []
            inner_ms: list[float] = []
            for i in range(repeats):
                if i % 2 == 0:
                    direct_ms.append(direct())
                    total, inner = via_stage()
                else:
                    total, inner = via_stage()
                    direct_ms.append(direct())
                stage_ms.append(total)
                inner_ms.append(inner)
        finally:
            loaded.tokenizer = tokenizer
            del model.forward
            stage.close()
            MODEL_CACHE.discard(loaded)

    out = summarize(direct_ms, stage_ms, inner_ms)
    out.update(
        candidates=float(len(POOL)),
        repeats=float(repeats),
        threads=float(torch.get_num_threads()),
    )
    return out


class _TokenizerProxy:
    """Calls go through ``call`` (timed); everything else reaches the tokenizer."""

    def __init__(self, tokenizer: Any, call: _Timed) -> None:
        self._tokenizer = tokenizer
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


__all__ = ["POOL", "QUERY", "bench_rerank_overhead", "build_minilm_cross_encoder"]
