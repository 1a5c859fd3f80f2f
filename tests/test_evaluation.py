"""Entity-level strict scores against hand-computed cases, and refusal to score mismatched texts."""

from __future__ import annotations

import pytest

from conftest import LABELS
from policy_ner.scoring import EvaluationInputError, PredictedDocument, evaluate
from policy_ner.types import Document, Span

TEXT = "区委台办为台湾青年发放300万元补贴，台胞可申请。"
ORG, YOUTH, MONEY, TAIBAO = (
    Span(0, 4, "ORG"),
    Span(5, 9, "POLICY_TARGET"),
    Span(11, 16, "SUBSIDY_AMOUNT"),
    Span(19, 21, "POLICY_TARGET"),
)
GOLD = [Document("d1", TEXT, (ORG, YOUTH, MONEY, TAIBAO))]


def predicted(*spans, text=TEXT, doc_id="d1"):
    return {doc_id: PredictedDocument(doc_id, text, tuple(spans))}


def test_perfect_prediction_scores_one():
    result = evaluate(GOLD, predicted(ORG, YOUTH, MONEY, TAIBAO), LABELS)
    assert result.micro.f1 == 1.0 and result.macro.f1 == 1.0
    assert result.per_label["POLICY_TARGET"].support == 2


def test_boundary_and_label_errors_count_as_both_false_positive_and_false_negative():
    # ORG exact; YOUTH cut short (boundary error); MONEY labelled ORG (label error); TAIBAO missed;
    # one spurious POLICY_TARGET.
    result = evaluate(
        GOLD, predicted(ORG, Span(6, 9, "POLICY_TARGET"), Span(11, 16, "ORG"), Span(22, 24, "POLICY_TARGET")), LABELS
    )
    org, target, money = (result.per_label[k] for k in LABELS)
    assert (org.precision, org.recall) == (0.5, 1.0) and org.f1 == pytest.approx(0.6667, abs=1e-4)
    assert (target.precision, target.recall, target.f1) == (0.0, 0.0, 0.0)
    assert (money.precision, money.recall, money.predicted) == (0.0, 0.0, 0)
    # micro: 1 true positive, 4 predicted, 4 gold
    assert (result.micro.precision, result.micro.recall, result.micro.f1) == (0.25, 0.25, 0.25)
    assert result.macro.f1 == pytest.approx(round(0.6667 / 3, 4), abs=1e-4)
    # every error here is a real chunk mismatch, so the lenient mode agrees
    assert result.default_mode_micro_f1 == 0.25


def test_lenient_mode_differs_from_strict_on_an_inside_tag_without_begin():
    # A bare I- sequence is a chunk for seqeval's default mode but not for strict IOB2.
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    from policy_ner.tags import char_tags

    gold = [char_tags(TEXT, [ORG])]
    bare_inside = [["I-ORG"] * 4 + ["O"] * (len(TEXT) - 4)]
    assert f1_score(gold, bare_inside) == 1.0
    assert f1_score(gold, bare_inside, mode="strict", scheme=IOB2) == 0.0


def test_empty_predictions_and_empty_gold():
    result = evaluate(GOLD, predicted(), LABELS)
    assert result.micro.f1 == 0.0 and result.micro.support == 4 and result.micro.predicted == 0
    empty_gold = [Document("d1", TEXT, ())]
    result = evaluate(empty_gold, predicted(ORG), LABELS)
    assert result.micro.precision == 0.0 and result.micro.support == 0 and result.micro.predicted == 1
    assert evaluate(empty_gold, predicted(), LABELS).micro.f1 == 0.0


def test_mismatched_text_or_missing_document_is_refused():
    with pytest.raises(EvaluationInputError, match=r"doc d1: predicted text differs .* character 5"):
        evaluate(GOLD, predicted(text=TEXT[:5] + "X" + TEXT[6:]), LABELS)
    with pytest.raises(EvaluationInputError, match="no prediction for 1 gold document"):
        evaluate(GOLD, predicted(doc_id="other"), LABELS)
