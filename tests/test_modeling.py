"""The scratch encoder's optional head (convolutions, CRF), lexical features and augmentation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from policy_ner.config import ConfigError, config_from_dict
from policy_ner.model.network import PolicyNerBertConfig, PolicyNerBertForTokenClassification
from policy_ner.model.predictor import viterbi
from policy_ner.train.augment import augment, mention_pool
from policy_ner.types import Document, Span

TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


def tiny_crf_model(conv_layers: int = 1) -> PolicyNerBertForTokenClassification:
    config = PolicyNerBertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=len(TAGS),
        id2label=dict(enumerate(TAGS)),
        label2id={t: i for i, t in enumerate(TAGS)},
        crf=True,
        conv_layers=conv_layers,
    )
    torch.manual_seed(0)
    model = PolicyNerBertForTokenClassification(config).eval()
    with torch.no_grad():
        model.crf_transitions.normal_()
        model.crf_start.normal_()
    return model


def brute_force_nll(emissions, transitions, start, gold):
    def path_score(path):
        return (
            start[path[0]]
            + sum(emissions[i, t] for i, t in enumerate(path))
            + sum(transitions[a, b] for a, b in zip(path, path[1:]))
        )

    every = torch.stack([path_score(p) for p in itertools.product(range(len(TAGS)), repeat=len(gold))])
    return torch.logsumexp(every, 0) - path_score(gold)


def test_crf_loss_equals_the_brute_force_negative_log_likelihood_over_tagged_tokens():
    model = tiny_crf_model()
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 0, 0]])
    labels = torch.tensor([[-100, 1, 2, 0, -100, -100], [-100, 3, 4, -100, -100, -100]])
    out = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels)
    transitions, start = model.crf_scores()
    expected = (
        brute_force_nll(out.logits[0, 1:4], transitions, start, [1, 2, 0])
        + brute_force_nll(out.logits[1, 1:3], transitions, start, [3, 4])
    ) / 5
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert transitions[0, 2] < -1000 and transitions[1, 4] < -1000  # O -> I-A and B-A -> I-B forbidden


def forward_algorithm_nll(emissions, transitions, start, gold):
    """-log p(gold) by the textbook loop over positions, one window at a time."""
    alpha = start + emissions[0]
    for t in range(1, len(gold)):
        alpha = torch.logsumexp(alpha[:, None] + transitions, dim=0) + emissions[t]
    gold_score = start[gold[0]] + sum(emissions[t, g] for t, g in enumerate(gold))
    gold_score = gold_score + sum(transitions[a, b] for a, b in zip(gold, gold[1:]))
    return torch.logsumexp(alpha, 0) - gold_score


def test_crf_loss_and_its_gradient_equal_the_forward_algorithm_on_windows_of_every_length():
    model = tiny_crf_model()
    generator = torch.Generator().manual_seed(5)
    lengths = [1, 2, 3, 7, 16, 33, 64]  # odd and even widths, one longer than every other
    width = max(lengths) + 2
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    labels = torch.full((len(lengths), width), -100)
    golds = []
    for row, length in enumerate(lengths):
        ids[row, : length + 2] = torch.randint(4, 20, (length + 2,), generator=generator)
        gold = [0] * length  # IOB2-valid: O, or B-x followed by I-x
        for t in range(length):
            if torch.rand(1, generator=generator) < 0.3:
                gold[t] = 1 if t == 0 or gold[t - 1] not in (1, 2) else 2
        golds.append(gold)
        labels[row, 1 : length + 1] = torch.tensor(gold)
    out = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels)
    (scan_gradient,) = torch.autograd.grad(out.loss, model.crf_transitions)

    transitions, start = model.crf_scores()
    expected = sum(
        forward_algorithm_nll(out.logits[row, 1 : length + 1], transitions, start, gold)
        for row, (length, gold) in enumerate(zip(lengths, golds))
    ) / sum(lengths)
    (loop_gradient,) = torch.autograd.grad(expected, model.crf_transitions)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(scan_gradient, loop_gradient, rtol=1e-4, atol=1e-6)


def test_window_outputs_do_not_depend_on_the_padding_in_their_batch():
    model = tiny_crf_model(conv_layers=2)
    alone = model(input_ids=torch.tensor([[2, 5, 6, 3]])).logits
    padded = model(input_ids=torch.tensor([[2, 5, 6, 3, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]]))
    assert torch.allclose(alone, padded.logits[:, :4], atol=1e-5)


def test_viterbi_adds_crf_transitions_and_keeps_iob2():
    scores = np.zeros((3, len(TAGS)))
    transitions = np.zeros((len(TAGS), len(TAGS)))
    transitions[1, 2] = transitions[2, 2] = 5.0  # B-A -> I-A -> I-A preferred
    path = viterbi(scores, TAGS, transitions, np.array([0.0, 1.0, 9.0, 0.0, 0.0]))
    assert [TAGS[i] for i in path] == ["B-A", "I-A", "I-A"]  # I-A may not start a document


def test_config_rejects_unknown_features_and_even_kernels():
    with pytest.raises(ConfigError, match="model.features: unknown feature 'bigram'"):
        config_from_dict({"name": "x", "labels": ["A"], "model": {"features": ["jieba", "bigram"]}})
    with pytest.raises(ConfigError, match="repeated"):
        config_from_dict({"name": "x", "labels": ["A"], "model": {"features": ["lac", "lac"]}})
    with pytest.raises(ConfigError, match="conv_kernel"):
        config_from_dict({"name": "x", "labels": ["A"], "model": {"conv_layers": 1, "conv_kernel": 4}})


def test_mention_replacement_moves_spans_with_the_new_mentions():
    docs = [
        Document(
            "a", "支持台胞和台资企业创业，给予补贴5000元。", (Span(2, 4, "T"), Span(5, 9, "T"), Span(16, 21, "M"))
        ),
        Document("b", "鼓励高校毕业生就业。", (Span(2, 7, "T"),)),
    ]
    assert mention_pool(docs)["T"] == ["台胞", "台资企业", "高校毕业生"]
    copies = augment(docs, copies=3, probability=1.0, seed=1)
    assert len(copies) == 6 and {c.doc_id for c in copies} >= {"a#aug1", "b#aug3"}
    for copy in copies:
        source = next(d for d in docs if copy.doc_id.startswith(d.doc_id + "#"))
        assert [s.label for s in copy.spans] == [s.label for s in source.spans]
        for span in copy.spans:
            assert copy.text[span.start : span.end] in mention_pool(docs)[span.label]
    assert any(c.text != d.text for c in copies for d in docs)
