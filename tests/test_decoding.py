"""IOB2-constrained Viterbi decoding and window merging in the Predictor."""

from __future__ import annotations

import numpy as np
import torch

from conftest import LABELS
from policy_ner.config import config_from_dict
from policy_ner.features.decoding import best_paths
from policy_ner.model.network import build_char_vocab, char_tokenizer
from policy_ner.model.predictor import Predictor, viterbi, viterbi_batch

TAGS = config_from_dict({"name": "t", "labels": LABELS}).tags


def is_valid_iob2(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_viterbi_repairs_an_inside_tag_after_outside():
    probs = np.full((3, len(TAGS)), 0.01)
    probs[0, TAGS.index("O")] = 0.9
    probs[1, TAGS.index("I-ORG")] = 0.6
    probs[1, TAGS.index("B-ORG")] = 0.3
    probs[2, TAGS.index("I-ORG")] = 0.9
    path = [TAGS[i] for i in viterbi(np.log(probs), TAGS)]
    assert path == ["O", "B-ORG", "I-ORG"]


def test_viterbi_never_emits_invalid_sequences_on_random_scores():
    rng = np.random.default_rng(0)
    for _ in range(200):
        log_probs = np.log(rng.dirichlet(np.ones(len(TAGS)) * 0.3, size=rng.integers(1, 30)))
        assert is_valid_iob2([TAGS[i] for i in viterbi(log_probs, TAGS)])


class CharRuleModel(torch.nn.Module):
    """A deterministic token classifier: each vocabulary id has a fixed tag, so the test knows
    exactly what every window should produce."""

    def __init__(self, tag_of_token: list[int]):
        super().__init__()
        table = torch.full((len(tag_of_token), len(TAGS)), -5.0)
        table[torch.arange(len(tag_of_token)), torch.tensor(tag_of_token)] = 5.0
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return type("Output", (), {"logits": self.table[input_ids]})()


def test_entity_crossing_window_boundaries_is_predicted_whole_with_exact_offsets():
    entity = "泉州台商投资区自然资源与规划建设交通局"
    text = "𠮷" + "，" * 9 + "😀" + entity + "。" * 7 + entity
    vocab = build_char_vocab([text])
    tokenizer = char_tokenizer(vocab)
    o, b, i = TAGS.index("O"), TAGS.index("B-ORG"), TAGS.index("I-ORG")
    tag_of_token = [o] * len(vocab)
    tag_of_token[vocab.index("泉")] = b
    for ch in entity[1:]:
        tag_of_token[vocab.index(ch)] = i
    # windows of 8 characters: every entity (19 characters) crosses two or three window boundaries
    predictor = Predictor(CharRuleModel(tag_of_token), tokenizer, TAGS, max_length=10, stride=3, batch_size=4)
    (found,) = predictor.predict([text])
    starts = [text.index(entity), text.rindex(entity)]
    assert [(e.label, e.start, e.end) for e in found] == [("ORG", s, s + len(entity)) for s in starts]
    assert all(text[e.start : e.end] == e.text == entity and 0.99 < e.score <= 1.0 for e in found)


def brute_force_best_path(scores: np.ndarray, transitions: np.ndarray | None, start: np.ndarray | None) -> list[int]:
    """The highest-scoring valid IOB2 path, by trying every path."""
    import itertools

    best, best_score = None, -np.inf
    for path in itertools.product(range(len(TAGS)), repeat=len(scores)):
        tags = [TAGS[i] for i in path]
        if tags[0].startswith("I-") or not is_valid_iob2(tags):
            continue
        score = sum(scores[t, i] for t, i in enumerate(path))
        if transitions is not None:
            score += start[path[0]] + sum(transitions[a, b] for a, b in zip(path, path[1:]))
        if score > best_score:
            best, best_score = list(path), score
    return best


def test_batched_viterbi_finds_each_sequences_best_path_with_and_without_crf_scores():
    rng = np.random.default_rng(1)
    lengths = [3, 1, 0, 4, 2, 4]
    for crf in (False, True):
        transitions = rng.normal(0, 2, (len(TAGS), len(TAGS))) if crf else None
        start = rng.normal(0, 2, len(TAGS)) if crf else None
        scores = [rng.normal(0, 3, (n, len(TAGS))) for n in lengths]
        paths = viterbi_batch(scores, TAGS, transitions, start)
        assert paths == [brute_force_best_path(s, transitions, start) if len(s) else [] for s in scores]
        assert paths == [viterbi(s, TAGS, transitions, start) for s in scores]


def test_best_paths_with_unconstrained_float32_transitions_as_lac_decodes():
    import itertools

    rng = np.random.default_rng(2)
    tags = 4
    transitions = rng.normal(0, 1, (tags, tags)).astype(np.float32)
    sequences = [rng.normal(0, 2, (n, tags)).astype(np.float32) for n in (5, 1, 0, 3)]

    def score(e, path):
        return sum(e[t, i] for t, i in enumerate(path)) + sum(transitions[a, b] for a, b in zip(path, path[1:]))

    expected = [
        list(max(itertools.product(range(tags), repeat=len(e)), key=lambda p: score(e, p))) if len(e) else []
        for e in sequences
    ]
    assert best_paths(sequences, transitions) == expected
    # ties go to the lowest tag id, as numpy's argmax would choose
    assert best_paths([np.zeros((3, tags), dtype=np.float32)], np.zeros((tags, tags), dtype=np.float32)) == [[0, 0, 0]]
