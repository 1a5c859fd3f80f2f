"""Tokenizer and model construction: a pretrained checkpoint (hub id or local directory) or a small
BERT built from the config with a character vocabulary generated from the project's own texts.
"""

from __future__ import annotations

import string
from collections import Counter
from typing import Iterable, Sequence

from transformers import AutoModelForTokenClassification, AutoTokenizer, BertConfig, BertForTokenClassification, \
    BertTokenizer

import torch

from .config import SCRATCH, Config
from .lexicon import BOUNDARY_TYPES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Always in the vocabulary, so digits, Latin letters and common punctuation never become [UNK]
# even when the training texts lack them.
_BASE_CHARACTERS = (string.digits + string.ascii_letters + string.punctuation
                    + "０１２３４５６７８９，。、；：？！“”‘’（）《》【】—…％．")


def build_char_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Special tokens, the base characters, then every other non-space character of `texts`
    seen at least `min_count` times, most frequent first (ties in code-point order)."""
    counts = Counter(ch for text in texts for ch in text if not ch.isspace())
    vocab = list(SPECIAL_TOKENS) + list(dict.fromkeys(_BASE_CHARACTERS))
    known = set(vocab)
    for ch, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count and ch not in known:
            vocab.append(ch)
            known.add(ch)
    return vocab


def char_tokenizer(vocab: Sequence[str]) -> BertTokenizer:
    """A BERT tokenizer over a character vocabulary: one token per character, case kept."""
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=False,
                         tokenize_chinese_chars=True, strip_accents=False)


def is_scratch(config: Config) -> bool:
    return config.model.base == SCRATCH


def new_model(config: Config, tokenizer, max_length: int):
    """A token classifier for `config.tags`: randomly initialised for `scratch`, else the base
    checkpoint's encoder with a fresh classification head."""
    tags = config.tags
    id2label = dict(enumerate(tags))
    label2id = {tag: i for i, tag in enumerate(tags)}
    if is_scratch(config):
        m = config.model
        bert_config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
            num_attention_heads=m.num_heads, intermediate_size=m.intermediate_size,
            hidden_dropout_prob=m.dropout, attention_probs_dropout_prob=m.dropout,
            max_position_embeddings=max(512, max_length), pad_token_id=tokenizer.pad_token_id,
            type_vocab_size=BOUNDARY_TYPES if m.word_features else 2,
            num_labels=len(tags), id2label=id2label, label2id=label2id,
        )
        return BertForTokenClassification(bert_config)
    model = AutoModelForTokenClassification.from_pretrained(
        config.model.base, num_labels=len(tags), id2label=id2label, label2id=label2id,
        ignore_mismatched_sizes=True)
    if config.model.word_features:
        widen_token_types(model, BOUNDARY_TYPES)
    return model


def widen_token_types(model, size: int) -> None:
    """Give a pretrained encoder `size` token types, each starting from its type-0 embedding."""
    embeddings = model.base_model.embeddings.token_type_embeddings
    if embeddings.num_embeddings >= size:
        return
    widened = torch.nn.Embedding(size, embeddings.embedding_dim)
    with torch.no_grad():
        widened.weight[:] = embeddings.weight[0]
        widened.weight[:embeddings.num_embeddings] = embeddings.weight
    model.base_model.embeddings.token_type_embeddings = widened
    model.config.type_vocab_size = size


def load_base_tokenizer(config: Config, vocab_texts: Iterable[str]):
    if is_scratch(config):
        return char_tokenizer(build_char_vocab(vocab_texts, config.model.min_char_count))
    return AutoTokenizer.from_pretrained(config.model.base)
