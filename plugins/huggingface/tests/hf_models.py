"""Tiny randomly initialised BERT models, built and saved by the tests (no hub access).

The vocabulary is small: a few whole words, the letters and digits, and their ``##``
continuations, so any ASCII text tokenises without ``[UNK]`` floods. The weights are drawn
with a wide ``initializer_range`` so the logits of different pairs differ clearly.
"""

from __future__ import annotations

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


def vocabulary() -> list[str]:
    return SPECIALS + sorted(set(WORDS)) + CHARS + [f"##{c}" for c in CHARS] + PUNCT


def build_tokenizer(folder: Path, *, max_length: int = 512) -> Any:
    """A WordPiece tokenizer over :func:`vocabulary`, saved into ``folder`` (and vocab.txt)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
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
    tokenizer = PreTrainedTokenizerFast(
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


def bert_config(*, num_labels: int = 1, positions: int = 512, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
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
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification(bert_config(num_labels=num_labels))
    model.save_pretrained(str(folder))
    build_tokenizer(folder)
    return folder
