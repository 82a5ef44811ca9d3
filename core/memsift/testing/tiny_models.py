"""Tiny randomly initialised BERT models for the tests of local-model plugins (no hub access).

Build one into a temporary folder and point your provider's config at it::

    @pytest.fixture(scope="session")
    def cross_encoder_dir(tmp_path_factory):
        return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")

The vocabulary is small: a few whole words, the letters and digits, and their ``##``
continuations, so any ASCII text tokenises without ``[UNK]`` floods. The weights are drawn
with a wide ``initializer_range`` so the logits of different pairs differ clearly. The
builders import torch and transformers (and sentence-transformers) when called; importing
this module does not. :func:`save_wordpiece_tokenizer` (a WordPiece tokenizer over any
vocabulary) serves the benchmark kit's real-shape model too.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

_WORD_TEXT = """
the a an is in of to and at on over where does do alice bob live lives lived lisbon
moved march works as nurse report due friday prefers green tea coffee morning capital
portugal our team meeting tuesday pizza likes food italian car broke down highway word
"""
WORDS = _WORD_TEXT.split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789")
PUNCT = list(".,?!:;'-")
HIDDEN = 32

#: A query and documents in the tiny vocabulary; the first and fourth document are about it.
QUERY = "where does alice live"
DOCS = [
    "alice moved to lisbon in march and works as a nurse",
    "the quarterly report is due on friday",
    "bob prefers green tea over coffee in the morning",
    "lisbon is the capital of portugal",
    "our team meeting moved to tuesday at 10am",
    "alice likes italian food",
    "the car broke down on the highway",
]


def save_wordpiece_tokenizer(folder: Path, vocab: list[str], *, max_length: int = 512) -> Any:
    """A BERT-style WordPiece fast tokenizer over ``vocab``, saved into ``folder`` (and vocab.txt).

    ``vocab`` must start with :data:`SPECIALS`. Imports transformers.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    transformers = importlib.import_module("transformers")
    ids = {token: i for i, token in enumerate(vocab)}
    backend = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        model_max_length=max_length,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def vocabulary() -> list[str]:
    """The tokens of the tiny models, specials first."""
    return SPECIALS + sorted(set(WORDS)) + CHARS + [f"##{c}" for c in CHARS] + PUNCT


def build_tokenizer(folder: Path, *, max_length: int = 512) -> Any:
    """A WordPiece tokenizer over :func:`vocabulary`, saved into ``folder`` (and vocab.txt)."""
    return save_wordpiece_tokenizer(folder, vocabulary(), max_length=max_length)


def bert_config(*, num_labels: int = 1, positions: int = 512, **extra: Any) -> Any:
    """A ``transformers.BertConfig`` of the tiny shape (2 layers, hidden :data:`HIDDEN`)."""
    transformers = importlib.import_module("transformers")
    return transformers.BertConfig(
        vocab_size=len(vocabulary()),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
        initializer_range=0.5,
        num_labels=num_labels,
        **extra,
    )


def build_cross_encoder(folder: Path, *, seed: int = 0, num_labels: int = 1) -> Path:
    """A BertForSequenceClassification with one logit (a cross-encoder), saved in ``folder``."""
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(bert_config(num_labels=num_labels))
    model.save_pretrained(str(folder))
    build_tokenizer(folder)
    return folder


def reference_logits(
    folder: Path, query: str, docs: list[str], *, max_length: int = 512
) -> list[float]:
    """The logits of the cross-encoder in ``folder`` straight from transformers, pair by pair.

    What a reranker's raw scores on that model must equal (its sigmoid, when normalised).
    """
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(folder), local_files_only=True
    )
    model.eval()
    out = []
    with torch.inference_mode():
        for doc in docs:
            batch = tokenizer(
                query, doc, truncation=True, max_length=max_length, return_tensors="pt"
            )
            out.append(float(model(**batch).logits[0, 0]))
    return out


def build_sentence_transformer(folder: Path, *, seed: int = 1, max_seq_length: int = 128) -> Path:
    """A BERT encoder + mean pooling saved as a sentence-transformers model in ``folder``.

    The BERT backbone is saved next to it, in ``<folder>-backbone``.
    """
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    st = importlib.import_module("sentence_transformers")
    try:  # sentence-transformers 5.x moved the modules
        modules = importlib.import_module("sentence_transformers.sentence_transformer.modules")
    except ImportError:  # pragma: no cover - 3.x / 4.x
        modules = importlib.import_module("sentence_transformers.models")

    torch.manual_seed(seed)
    backbone = folder.parent / f"{folder.name}-backbone"
    transformers.BertModel(bert_config()).save_pretrained(str(backbone))
    build_tokenizer(backbone)
    transformer = modules.Transformer(str(backbone), max_seq_length=max_seq_length)
    pooling = modules.Pooling(HIDDEN, "mean")
    st.SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder


__all__ = [
    "DOCS",
    "HIDDEN",
    "QUERY",
    "SPECIALS",
    "bert_config",
    "build_cross_encoder",
    "build_sentence_transformer",
    "build_tokenizer",
    "reference_logits",
    "save_wordpiece_tokenizer",
    "vocabulary",
]
