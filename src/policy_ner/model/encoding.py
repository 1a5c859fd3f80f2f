"""Texts -> tokens one character at a time -> overlapping windows framed as the network sees them.

Training (`train.dataset`) and prediction (`model.predictor`) frame and pad windows with the same two
functions, `frame_window` and `pad_windows`, so what the network is trained on and what it is run on
cannot drift apart.

Every character of a document is one "word" for the tokenizer. Characters that yield no token
(whitespace, control characters) carry no tag of their own; a tagged character's first sub-token
carries its tag. Windows overlap by `stride` tokens, so no text is dropped however long the
document, and an entity shorter than the overlap lies whole inside at least one window.
"""

from __future__ import annotations

import unicodedata
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedText:
    """A text tokenized one character at a time.

    `input_ids[k]` is the k-th token; `token_chars[k]` the character it came from. `units` lists,
    in order, the characters that produced at least one token (the ones that get a tag), and
    `unit_tokens[u]` the index of the first token of unit u. `token_types` carries the packed
    feature id of each token's character (features.py; all 0 without features), `dense` (tokens x
    width, float32; None without dense features) the dense feature vector of each token's character.
    """

    text: str
    input_ids: list[int]
    token_chars: list[int]
    units: list[int]
    unit_tokens: list[int]
    token_types: list[int]
    dense: np.ndarray | None = None


def encode_text(
    text: str, tokenizer, char_features: Sequence[int] | None = None, char_dense: np.ndarray | None = None
) -> EncodedText:
    """`text` tokenized one character at a time; `char_features` holds one feature id per character,
    `char_dense` (characters x width) one dense feature vector per character."""
    token_ids = char_token_ids(tokenizer, text)
    input_ids: list[int] = []
    token_chars: list[int] = []
    units: list[int] = []
    unit_tokens: list[int] = []
    for char_index, char in enumerate(text):
        ids = token_ids[char]
        if ids:
            units.append(char_index)
            unit_tokens.append(len(input_ids))
            input_ids += ids
            token_chars += [char_index] * len(ids)
    token_types = [char_features[c] for c in token_chars] if char_features is not None else [0] * len(token_chars)
    dense = None
    if char_dense is not None:
        dense = np.asarray(char_dense, dtype=np.float32)[np.asarray(token_chars, dtype=np.int64)]
    return EncodedText(text, input_ids, token_chars, units, unit_tokens, token_types, dense)


_TOKENS_OF_CHAR: weakref.WeakKeyDictionary[object, dict[str, list[int]]] = weakref.WeakKeyDictionary()


def char_token_ids(tokenizer, text: str) -> dict[str, list[int]]:
    """The token ids of each character of `text` as its own word (none for whitespace), remembered per
    tokenizer: a character is tokenized the same way wherever it stands, and a corpus has a few
    thousand distinct characters, so each is run through the tokenizer once."""
    known = _TOKENS_OF_CHAR.setdefault(tokenizer, {})
    new = [char for char in dict.fromkeys(text) if char not in known]
    if new:
        encoding = tokenizer(
            new,
            is_split_into_words=True,
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        tokens: dict[str, list[int]] = {char: [] for char in new}
        for token_id, word in zip(encoding["input_ids"], encoding.word_ids()):
            tokens[new[word]].append(token_id)
        unknown = [tokenizer.unk_token_id]
        for char in [c for c in new if tokens[c] == unknown]:
            tokens[char] = _stand_in_ids(tokenizer, char) or unknown
        known.update(tokens)  # complete entries only: another thread may be reading
    return known


_TYPOGRAPHIC_STAND_INS = {"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-", "―": "-"}
"""What a character a vocabulary lacks is read as when its NFKC form is unknown too: bert-base-chinese's
vocabulary has no curly quotes or em dash, which are 1.5% of the characters of data/raw."""


def _stand_in_ids(tokenizer, char: str) -> list[int] | None:
    """The token ids of the character's NFKC form or typographic stand-in, when the vocabulary knows it."""
    for stand_in in dict.fromkeys((unicodedata.normalize("NFKC", char), _TYPOGRAPHIC_STAND_INS.get(char))):
        if stand_in and stand_in != char and not stand_in.isspace():
            ids = tokenizer(stand_in, add_special_tokens=False, return_attention_mask=False)["input_ids"]
            if ids and tokenizer.unk_token_id not in ids:
                return ids
    return None


def plan_windows(n_tokens: int, content_length: int, stride: int, shift: int = 0) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most `content_length`, consecutive ones sharing at least
    `stride` tokens, covering every token. The last window is aligned to the end so it is full.

    `shift` (0 <= shift < content_length - stride) moves the inner windows right, so training can
    show the model each passage at other window positions from epoch to epoch.
    """
    if n_tokens <= content_length:
        return [(0, n_tokens)] if n_tokens else []
    step = content_length - stride
    starts = sorted({0, *range(shift or step, n_tokens - content_length, step), n_tokens - content_length})
    return [(s, s + content_length) for s in starts]


def token_labels(encoded: EncodedText, tags: Sequence[str], tag_to_id: dict[str, int]) -> list[int]:
    """Tag id on each character's first token, IGNORE_INDEX on continuation sub-tokens."""
    labels = [IGNORE_INDEX] * len(encoded.input_ids)
    for char_index, token_index in zip(encoded.units, encoded.unit_tokens):
        labels[token_index] = tag_to_id[tags[char_index]]
    return labels


@dataclass(frozen=True)
class SpecialTokens:
    """The ids that frame and pad a window."""

    cls: int
    sep: int
    pad: int

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        return cls(tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)


def frame_window(
    input_ids: Sequence[int],
    token_types: Sequence[int],
    labels: Sequence[int] | None = None,
    *,
    special: SpecialTokens,
    dense: np.ndarray | None = None,
) -> dict[str, Any]:
    """One window as the network sees it: [CLS] ids [SEP]. The two special positions have token type 0,
    when `labels` are given the label IGNORE_INDEX, and when `dense` (tokens x width) is given a zero
    dense vector (`dense_features`, float32, one row per position)."""
    row: dict[str, Any] = {"input_ids": [special.cls, *input_ids, special.sep], "token_type_ids": [0, *token_types, 0]}
    if labels is not None:
        row["labels"] = [IGNORE_INDEX, *labels, IGNORE_INDEX]
    if dense is not None:
        framed = np.zeros((len(input_ids) + 2, np.shape(dense)[1]), dtype=np.float32)
        framed[1:-1] = dense
        row["dense_features"] = framed
    return row


def pad_windows(rows: Sequence[Mapping[str, Sequence]], pad_id: int) -> dict[str, np.ndarray]:
    """Framed windows right-padded into arrays: input_ids (with `pad_id`), attention_mask, token_type_ids
    (0 on padding), int64, and, when the rows carry them, labels (IGNORE_INDEX on padding) and
    dense_features (float32, zero vectors on padding)."""
    width = max(len(row["input_ids"]) for row in rows)
    shape = (len(rows), width)
    arrays: dict[str, np.ndarray] = {
        "input_ids": np.full(shape, pad_id, dtype=np.int64),
        "attention_mask": np.zeros(shape, dtype=np.int64),
        "token_type_ids": np.zeros(shape, dtype=np.int64),
    }
    if "labels" in rows[0]:
        arrays["labels"] = np.full(shape, IGNORE_INDEX, dtype=np.int64)
    if "dense_features" in rows[0]:
        arrays["dense_features"] = np.zeros((*shape, np.shape(rows[0]["dense_features"])[1]), dtype=np.float32)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        arrays["input_ids"][i, :n] = row["input_ids"]
        arrays["attention_mask"][i, :n] = 1
        arrays["token_type_ids"][i, :n] = row["token_type_ids"]
        if "labels" in arrays:
            arrays["labels"][i, :n] = row["labels"]
        if "dense_features" in arrays:
            arrays["dense_features"][i, :n] = row["dense_features"]
    return arrays
