"""Pretraining data: the project's texts and an unlabelled corpus as one memory-mapped array of token
ids, cut into fixed windows, with jieba word starts for whole-word masking, and the masking itself.

The corpus (data/pretrain/corpus.jsonl, ~9M characters) would take gigabytes as Python lists of
windows; as a uint16 array on disk it is 18 MB, read by the operating system's page cache, and a batch
is a handful of slices. The array is built once per run folder and reused by `--resume`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..features.lexicon import BEGIN, SINGLE, word_boundaries
from ..model.encoding import IGNORE_INDEX, char_token_ids
from ..model.network import vocab_from_counts

STORE_FORMAT = 1
MIN_WINDOW_TOKENS = 8
"""A text's last window is kept only if it has at least this many tokens (shorter texts are skipped):
a handful of characters gives the masked LM almost no context."""


class PretrainDataError(ValueError):
    """A corpus file that cannot be read; the message names the file and line."""


def read_corpus(path: str | Path) -> Iterator[str]:
    """The `text` of each line of a JSONL corpus (`scripts/build_pretrain_corpus.py` writes one), streamed."""
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise PretrainDataError(f"{path}: cannot read the corpus ({error.strerror})") from error
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise PretrainDataError(f"{path}:{number}: not JSON ({error.msg})") from error
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise PretrainDataError(f'{path}:{number}: expected an object with a "text" string')
            yield record["text"]


def char_counts(texts: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        counts.update(text)
    for ch in [ch for ch in counts if ch.isspace()]:
        del counts[ch]
    return counts


def pretraining_vocab(project: Counter, corpus: Counter, project_min: int, corpus_min: int) -> list[str]:
    """Every character of the project's texts seen `project_min` times, and every corpus character seen
    `corpus_min` times: the corpus widens the vocabulary beyond the ~51,000 annotated characters (to
    characters of documents the model has not seen), and the threshold keeps its one-off rarities
    (names, typos) out, where their embeddings would stay untrained."""
    kept = Counter({ch: n for ch, n in project.items() if n >= project_min})
    kept.update({ch: n for ch, n in corpus.items() if n >= corpus_min})
    return vocab_from_counts(kept, 1)


def unknown_rate(counts: Counter, tokenizer) -> float:
    """Share of the counted characters (whitespace excluded) that the tokenizer turns into [UNK]."""
    ids = char_token_ids(tokenizer, "".join(counts))
    total = sum(counts.values())
    unknown = sum(n for ch, n in counts.items() if ids[ch] == [tokenizer.unk_token_id])
    return round(unknown / total, 6) if total else 0.0


def fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class TokenStore:
    """Token ids of all texts end to end (`tokens`), 1 where a jieba word starts (`word_starts`, all
    ones without whole-word masking), and the windows as (start, length) rows of `windows`."""

    folder: Path
    tokens: np.ndarray
    word_starts: np.ndarray
    windows: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.windows)


def open_store(
    folder: Path,
    key: dict,
    texts: Callable[[], Iterable[str]],
    tokenizer,
    content_length: int,
    whole_word: bool,
    log=print,
) -> TokenStore:
    """The store in `folder` if it was built for `key` (vocabulary, texts, window length, masking
    scheme), else a new one built there from `texts()` (written to a scratch folder and renamed, so an
    interrupted build leaves nothing half-written)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key:
            return load_store(folder, meta)
        log(f"{folder}: built for other data or settings; rebuilding it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        meta = write_store(scratch, texts(), tokenizer, content_length, whole_word)
        meta["key"] = key
        (scratch / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(scratch, folder)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return load_store(folder, meta)


def load_store(folder: Path, meta: dict) -> TokenStore:
    return TokenStore(
        folder,
        np.load(folder / "tokens.npy", mmap_mode="r"),
        np.load(folder / "word_starts.npy", mmap_mode="r"),
        np.load(folder / "windows.npy"),
        meta,
    )


def write_store(folder: Path, texts: Iterable[str], tokenizer, content_length: int, whole_word: bool) -> dict:
    """Tokenize `texts` one at a time into compact arrays and save them; return the counts."""
    tokens = array("H" if len(tokenizer) <= 0xFFFF else "I")
    starts = array("B")
    windows = array("q")
    texts_seen = unknown = 0
    for text in texts:
        texts_seen += 1
        ids, text_starts = text_tokens(text, tokenizer, whole_word)
        begin = len(tokens)
        tokens.extend(ids)
        starts.extend(text_starts)
        unknown += ids.count(tokenizer.unk_token_id)
        for offset in range(0, len(ids), content_length):
            length = min(content_length, len(ids) - offset)
            if length >= MIN_WINDOW_TOKENS:
                windows.extend((begin + offset, length))
    if not windows:
        raise PretrainDataError(f"no text of at least {MIN_WINDOW_TOKENS} tokens to pretrain on")
    np.save(folder / "tokens.npy", np.frombuffer(tokens, dtype=np.uint16 if tokens.typecode == "H" else np.uint32))
    np.save(folder / "word_starts.npy", np.frombuffer(starts, dtype=np.uint8))
    np.save(folder / "windows.npy", np.frombuffer(windows, dtype=np.int64).reshape(-1, 2))
    return {
        "format": STORE_FORMAT,
        "texts": texts_seen,
        "tokens": len(tokens),
        "windows": len(windows) // 2,
        "unknown_tokens": unknown,
        "whole_word": whole_word,
        "content_length": content_length,
    }


def text_tokens(text: str, tokenizer, whole_word: bool) -> tuple[list[int], list[int]]:
    """The token ids of `text`, one character at a time as in fine-tuning (`encode_text`), and per token
    1 if it starts a jieba word (with `whole_word`; else every token starts its own "word")."""
    by_char = char_token_ids(tokenizer, text)
    ids: list[int] = []
    starts: list[int] = []
    boundaries = word_boundaries(text) if whole_word else None
    for index, char in enumerate(text):
        char_ids = by_char[char]
        if not char_ids:
            continue
        begins = boundaries is None or boundaries[index] in (BEGIN, SINGLE) or not starts
        ids += char_ids
        starts += [1 if begins else 0] + [0] * (len(char_ids) - 1)
    return ids, starts


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    """The original id at each masked position, IGNORE_INDEX elsewhere."""


def window_batch(store: TokenStore, rows: Sequence[int], special: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Windows `rows` framed as [CLS] ids [SEP] and right-padded: ids, attention mask, word starts
    (the special and padding positions count as word starts, so no word runs across them)."""
    cls, sep, pad = special
    lengths = store.windows[rows, 1]
    width = int(lengths.max()) + 2
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=np.int64)
    starts = np.ones((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        begin, length = (int(v) for v in store.windows[row])
        ids[i, 0], ids[i, length + 1] = cls, sep
        ids[i, 1 : length + 1] = store.tokens[begin : begin + length]
        starts[i, 1 : length + 1] = store.word_starts[begin : begin + length]
        starts[i, 1] = 1
        attention[i, : length + 2] = 1
    return ids, attention, starts


def mask_batch(
    ids: np.ndarray,
    attention: np.ndarray,
    starts: np.ndarray,
    *,
    probability: float,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    generator: torch.Generator,
) -> Batch:
    """BERT's masking, by word: each word (a run of tokens from one word start to the next) is chosen
    with `probability`, and all its tokens are predicted; of those, 80% become [MASK], 10% a random
    token and 10% stay. With a start on every token this is BERT's original per-token masking."""
    input_ids = torch.from_numpy(ids)
    word_starts = torch.from_numpy(starts).bool()
    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    start_of_word = torch.cummax(torch.where(word_starts, positions, torch.zeros_like(positions)), dim=1).values
    draw = torch.rand(input_ids.shape, generator=generator)
    eligible = torch.from_numpy(attention).bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids)))
    chosen = eligible & (draw.gather(1, start_of_word) < probability)
    how = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    masked = input_ids.clone()
    masked[chosen & (how < 0.8)] = mask_id
    replaced = chosen & (how >= 0.8) & (how < 0.9)
    masked[replaced] = random_ids[replaced]
    return Batch(masked, torch.from_numpy(attention), labels)


class WindowOrder:
    """Which windows make up step s's batch: sample i = s * batch_size + j of an endless sequence of
    epochs, each a permutation of all windows seeded by (seed, epoch). The data position is thus the
    step number itself, and a resumed run draws exactly the batches the uninterrupted one would."""

    def __init__(self, windows: int, batch_size: int, seed: int):
        self.windows, self.batch_size, self.seed = windows, batch_size, seed
        self._permutations: dict[int, np.ndarray] = {}

    def epoch_of(self, step: int) -> float:
        return step * self.batch_size / self.windows

    def rows(self, step: int) -> list[int]:
        rows = []
        for sample in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, position = divmod(sample, self.windows)
            rows.append(int(self.permutation(epoch)[position]))
        return rows

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            for old in [e for e in self._permutations if e < epoch - 1]:
                del self._permutations[old]
            self._permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.windows)
        return self._permutations[epoch]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The masking draws of one step, from (seed, step) alone: nothing to save for a resume."""
    return torch.Generator().manual_seed(int(fingerprint(str(seed), str(step))[:15], 16))
