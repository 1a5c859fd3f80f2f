"""Tokenizer and model construction: a pretrained checkpoint (hub id or local directory) or a small
BERT built from the config with a character vocabulary generated from the project's own texts.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict, cast

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, BertTokenizer

from ..config import SCRATCH, Config
from .modeling_policy_ner import PolicyNerBertConfig, PolicyNerBertForTokenClassification

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Always in the vocabulary, so digits, Latin letters and common punctuation never become [UNK]
# even when the training texts lack them.
_BASE_CHARACTERS = (
    string.digits
    + string.ascii_letters
    + string.punctuation
    + "０１２３４５６７８９，。、；：？！“”‘’（）《》【】—…％．"
)


def build_char_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Special tokens, the base characters, then every other non-space character of `texts`
    seen at least `min_count` times, most frequent first (ties in code-point order)."""
    return vocab_from_counts(Counter(ch for text in texts for ch in text if not ch.isspace()), min_count)


def vocab_from_counts(counts: Counter, min_count: int = 1) -> list[str]:
    """`build_char_vocab` over characters already counted (pretraining merges two corpora's counts)."""
    vocab = list(SPECIAL_TOKENS) + list(dict.fromkeys(_BASE_CHARACTERS))
    known = set(vocab)
    for ch, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count and ch not in known:
            vocab.append(ch)
            known.add(ch)
    return vocab


def char_tokenizer(vocab: Sequence[str]) -> BertTokenizer:
    """A BERT tokenizer over a character vocabulary: one token per character, case kept."""
    return BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)},
        do_lower_case=False,
        tokenize_chinese_chars=True,
        strip_accents=False,
    )


def is_scratch(config: Config) -> bool:
    return config.model.base == SCRATCH


class HeadSettings(TypedDict):
    """The `PolicyNerBertConfig` arguments `new_model` takes from the config's tags and `model.*`."""

    num_labels: int
    id2label: dict[int, str]
    label2id: dict[str, int]
    conv_layers: int
    conv_kernel: int
    crf: bool
    feature_sizes: list[int]
    dense_sizes: list[int]


def new_model(
    config: Config, tokenizer, max_length: int, feature_sizes: Sequence[int] = (), dense_sizes: Sequence[int] = ()
):
    """A token classifier for `config.tags` whose feature embedding takes `feature_sizes` channels and,
    with `dense_sizes`, dense features per token (blocks of those widths, see `DenseInput`): randomly
    initialised for `scratch` (its character embeddings from LAC's with `model.init_embeddings: lac`),
    else the base checkpoint's encoder with a fresh head."""
    tags = config.tags
    m = config.model
    settings = HeadSettings(
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id={t: i for i, t in enumerate(tags)},
        conv_layers=m.conv_layers,
        conv_kernel=m.conv_kernel,
        crf=m.crf,
        feature_sizes=list(feature_sizes),
        dense_sizes=list(dense_sizes),
    )
    if is_scratch(config):
        model = PolicyNerBertForTokenClassification(
            PolicyNerBertConfig(**scratch_encoder_settings(config, tokenizer, max_length), **settings)
        )
        if m.init_embeddings == "lac":
            copy_lac_embeddings(model, tokenizer)
        return model
    base_config = AutoConfig.from_pretrained(m.base).to_dict()
    if base_config.get("model_type") == PolicyNerBertConfig.model_type:  # one of ours: as it was built
        keeps_token_types = bool(base_config.get("pretrained_token_types"))
    else:
        keeps_token_types = base_config.get("type_vocab_size", 0) > 0
    for key in ("model_type", "architectures", "transformers_version", "pretrained_token_types", *settings):
        base_config.pop(key, None)
    # `output_loading_info` makes it return (model, loading info), which its annotation does not say
    model, loading = cast(
        "tuple[PolicyNerBertForTokenClassification, dict[str, Any]]",
        PolicyNerBertForTokenClassification.from_pretrained(
            m.base,
            config=PolicyNerBertConfig(**settings, **base_config, pretrained_token_types=keeps_token_types),
            ignore_mismatched_sizes=True,
            output_loading_info=True,
        ),
    )
    if keeps_token_types:
        # New channels start at zero (see FeatureEmbedding). BERT's own initialiser, which covers
        # everything under `bert`, would draw them at random; channels the base held are kept.
        fresh = set(loading["missing_keys"]) | {key for key, *_ in loading.get("mismatched_keys", [])}
        with torch.no_grad():
            for index, channel in enumerate(model.bert.embeddings.token_type_embeddings.channels):
                if f"bert.embeddings.token_type_embeddings.channels.{index}.weight" in fresh:
                    cast(nn.Embedding, channel).weight.zero_()
    return model


def scratch_encoder_settings(config: Config, tokenizer, max_length: int) -> dict:
    """`BertConfig` arguments of the encoder that `model.*` describes."""
    m = config.model
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=m.hidden_size,
        num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads,
        intermediate_size=m.intermediate_size,
        hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.dropout,
        max_position_embeddings=max(512, max_length),
        pad_token_id=tokenizer.pad_token_id,
    )


def copy_lac_embeddings(model, tokenizer) -> int:
    """Overwrite the word-embedding row of every vocabulary character that LAC's vocabulary holds with
    LAC's pretrained row, as is (LAC's table has the model's width, 128; its rows are larger than a
    fresh initialisation's, std 0.17 against 0.02); special tokens and characters LAC lacks keep their
    random rows. Returns how many rows were copied."""
    from ..features.lexicon import lac_char_embeddings

    embeddings = model.get_input_embeddings().weight
    rows, found = lac_char_embeddings(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    if rows.shape[1] != embeddings.shape[1]:
        raise ValueError(f"LAC's embeddings are {rows.shape[1]} wide, the model's {embeddings.shape[1]}")
    with torch.no_grad():
        index = torch.from_numpy(found.nonzero()[0])
        embeddings[index] = torch.from_numpy(rows[found]).to(embeddings.dtype)
    return int(found.sum())


def load_base_tokenizer(config: Config, vocab_texts: Iterable[str]):
    if is_scratch(config):
        return char_tokenizer(build_char_vocab(vocab_texts, config.model.min_char_count))
    return AutoTokenizer.from_pretrained(config.model.base)


def crf_parameters(model) -> dict[str, list] | None:
    """The CRF's transition and start scores as plain lists (saved with the model settings so any
    runtime can decode), or None for a model without a CRF."""
    if getattr(model, "crf_transitions", None) is None:
        return None
    transitions, start = model.crf_scores()
    return {"transitions": transitions.detach().cpu().tolist(), "start": start.detach().cpu().tolist()}


AutoConfig.register(PolicyNerBertConfig.model_type, PolicyNerBertConfig)
AutoModelForTokenClassification.register(PolicyNerBertConfig, PolicyNerBertForTokenClassification)
# save_pretrained then writes modeling_policy_ner.py and an auto_map beside the weights (see that file)
PolicyNerBertConfig.register_for_auto_class()
PolicyNerBertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
