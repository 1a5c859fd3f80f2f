"""Report metrics against hand-computed cases: matching, SemEval-2013 partial match, error taxonomy,
confusion, error list, threshold curve and the seeded bootstrap."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import CORPUS_EXPORT, LABELS
from policy_ner.evaluate import metrics
from policy_ner.evaluate.evaluation import build_report
from policy_ner.labelstudio.exports import load_documents
from policy_ner.scoring import EvaluationInputError, PredictedDocument, evaluate, predicted_documents
from policy_ner.types import Document, Span

TEXT = "区委台办为台湾青年发放300万元补贴，台胞可申请。"
ORG, YOUTH, MONEY, TAIBAO = (
    Span(0, 4, "ORG"),
    Span(5, 9, "POLICY_TARGET"),
    Span(11, 16, "SUBSIDY_AMOUNT"),
    Span(19, 21, "POLICY_TARGET"),
)
GOLD = [Document("d1", TEXT, (ORG, YOUTH, MONEY, TAIBAO))]
# ORG exact; YOUTH cut short (boundary error); MONEY labelled ORG (label error); TAIBAO missed;
# one spurious POLICY_TARGET ("申请").
SHORT_YOUTH, MONEY_AS_ORG, SPURIOUS = Span(6, 9, "POLICY_TARGET"), Span(11, 16, "ORG"), Span(22, 24, "POLICY_TARGET")
PREDICTED = (ORG, SHORT_YOUTH, MONEY_AS_ORG, SPURIOUS)
SCORES = (0.9, 0.6, 0.8, 0.3)


def predicted(*spans, scores=None, text=TEXT, doc_id="d1"):
    return {doc_id: PredictedDocument(doc_id, text, tuple(spans), scores)}


def matches():
    return metrics.match_document("d1", GOLD[0].spans, PREDICTED, SCORES)


def test_matching_separates_boundary_errors_from_label_errors():
    found = {(m.gold, m.predicted): m.category for m in matches()}
    assert found == {
        (ORG, ORG): "correct",
        (YOUTH, SHORT_YOUTH): "boundary",
        (MONEY, MONEY_AS_ORG): "label",
        (TAIBAO, None): "missed",
        (None, SPURIOUS): "spurious",
    }
    overlap_both = metrics.match_document("d", [Span(0, 6, "ORG")], [Span(0, 2, "POLICY_TARGET"), Span(3, 6, "ORG")])
    # the larger overlap wins the gold entity; the other prediction is spurious
    assert [(m.category, m.predicted) for m in overlap_both] == [
        ("spurious", Span(0, 2, "POLICY_TARGET")),
        ("boundary", Span(3, 6, "ORG")),
    ]
    assert (
        metrics.match_document("d", [Span(0, 6, "ORG")], [Span(2, 8, "POLICY_TARGET")])[0].category == "label_boundary"
    )


def test_semeval_2013_schemas_by_hand():
    scores = metrics.partial_match_scores(matches(), LABELS)
    overall = {schema: scores[schema]["overall"] for schema in metrics.SCHEMAS}
    #                 COR INC PAR MIS SPU POS ACT
    assert [
        (s.correct, s.incorrect, s.partial, s.missed, s.spurious, s.possible, s.actual) for s in overall.values()
    ] == [
        (1, 2, 0, 1, 1, 4, 4),  # strict
        (2, 1, 0, 1, 1, 4, 4),  # exact: the label error has exact offsets
        (2, 0, 1, 1, 1, 4, 4),  # partial: the boundary error is half right
        (2, 1, 0, 1, 1, 4, 4),
    ]  # type: the boundary error has the right type
    assert [(s.precision, s.recall, s.f1) for s in overall.values()] == [
        (0.25, 0.25, 0.25),
        (0.5, 0.5, 0.5),
        (0.625, 0.625, 0.625),
        (0.5, 0.5, 0.5),
    ]
    # per label: pairs count under the gold label, spurious predictions under their own label
    target = scores["partial"]["POLICY_TARGET"]
    assert (target.partial, target.missed, target.spurious, target.precision, target.recall) == (1, 1, 1, 0.25, 0.25)
    assert scores["exact"]["SUBSIDY_AMOUNT"].correct == 1 and scores["strict"]["SUBSIDY_AMOUNT"].incorrect == 1
    # the strict schema agrees with seqeval strict on the micro figures
    assert evaluate(GOLD, predicted(*PREDICTED), LABELS).micro.f1 == overall["strict"].f1


def test_error_counts_and_confusion_by_hand():
    counts = metrics.error_counts(matches(), LABELS)
    assert counts["ORG"] == {"correct": 1, "label": 0, "boundary": 0, "label_boundary": 0, "missed": 0, "spurious": 0}
    assert counts["POLICY_TARGET"] == {
        "correct": 0,
        "label": 0,
        "boundary": 1,
        "label_boundary": 0,
        "missed": 1,
        "spurious": 1,
    }
    assert counts["SUBSIDY_AMOUNT"]["label"] == 1 and sum(counts["total"].values()) == 5
    table = metrics.confusion(matches(), LABELS)
    nonzero = {(g, p): n for g, row in table.items() for p, n in row.items() if n}
    assert nonzero == {
        ("ORG", "ORG"): 1,
        ("POLICY_TARGET", "POLICY_TARGET"): 1,
        ("SUBSIDY_AMOUNT", "ORG"): 1,
        ("POLICY_TARGET", metrics.NONE): 1,
        (metrics.NONE, "POLICY_TARGET"): 1,
    }


def test_error_list_has_context_and_groups_by_label():
    errors = metrics.error_list(matches(), {"d1": TEXT}, LABELS)
    assert [(e.kind, e.category, e.text) for e in errors["ORG"]] == [("false_positive", "label", "300万元")]
    assert errors["ORG"][0].other == "SUBSIDY_AMOUNT '300万元' 11:16" and errors["ORG"][0].score == 0.8
    assert [(e.kind, e.text) for e in errors["POLICY_TARGET"]] == [
        ("false_negative", "台湾青年"),
        ("false_positive", "湾青年"),
        ("false_negative", "台胞"),
        ("false_positive", "申请"),
    ]
    youth = errors["POLICY_TARGET"][0]
    assert (youth.left, youth.right) == ("区委台办为", "发放300万元补贴，台胞可申请。")
    long_text = "甲" * 30 + "台胞" + "乙" * 30
    (far,) = metrics.error_list(
        metrics.match_document("x", [Span(30, 32, "POLICY_TARGET")], []), {"x": long_text}, LABELS
    )["POLICY_TARGET"]
    assert far.left == "甲" * 20 and far.right == "乙" * 20
    assert [e.text for e in errors["SUBSIDY_AMOUNT"]] == ["300万元"]


def test_threshold_curve_by_hand():
    curve = {p["threshold"]: p for p in metrics.threshold_curve(matches(), gold_total=4)}
    assert (curve[0.0]["predicted"], curve[0.0]["precision"], curve[0.0]["recall"]) == (4, 0.25, 0.25)
    assert (curve[0.85]["predicted"], curve[0.85]["precision"], curve[0.85]["recall"]) == (1, 1.0, 0.25)
    assert curve[0.95]["predicted"] == 0 and curve[0.95]["precision"] == 0.0
    no_scores = metrics.match_document("d1", GOLD[0].spans, PREDICTED)
    assert metrics.threshold_curve(no_scores, gold_total=4) is None


def test_empty_predictions_and_empty_gold():
    report = build_report(GOLD, predicted(scores=()), LABELS, samples=50)
    strict = report.partial["strict"]["overall"]
    assert (strict.missed, strict.actual, strict.precision, strict.recall, strict.f1) == (4, 0, 0.0, 0.0, 0.0)
    assert report.error_counts["total"]["missed"] == 4 and report.intervals["micro avg"]["f1"] == metrics.Interval(0, 0)
    assert len(report.errors["POLICY_TARGET"]) == 2
    assert report.threshold_curve[0]["predicted"] == 0
    empty_gold = [Document("d1", TEXT, ())]
    report = build_report(empty_gold, predicted(ORG, scores=(0.5,)), LABELS, samples=50)
    strict = report.partial["strict"]["overall"]
    assert (strict.spurious, strict.possible, strict.precision, strict.recall) == (1, 0, 0.0, 0.0)
    assert report.confusion[metrics.NONE]["ORG"] == 1
    assert report.result.micro.predicted == 1 and report.result.micro.support == 0


def test_report_refuses_different_texts_missing_documents_and_unknown_labels():
    with pytest.raises(EvaluationInputError, match=r"doc d1: predicted text differs .* character 5"):
        build_report(GOLD, predicted(text=TEXT[:5] + "X" + TEXT[6:]), LABELS)
    with pytest.raises(EvaluationInputError, match="no prediction for 1 gold document.*: d1"):
        build_report(GOLD, predicted(doc_id="other"), LABELS)
    with pytest.raises(EvaluationInputError, match="doc d1: predicted label 'PERSON' at 0:4"):
        build_report(GOLD, predicted(Span(0, 4, "PERSON")), LABELS)
    with pytest.raises(EvaluationInputError, match="no gold documents"):
        build_report([], {}, LABELS)


def test_prediction_records_with_repeated_docs_or_overlaps_are_refused():
    record = {"doc_id": "d1", "text": TEXT, "entities": [{"label": "ORG", "start": 0, "end": 4, "score": 0.5}]}
    assert predicted_documents([record])["d1"].scores == (0.5,)
    with pytest.raises(EvaluationInputError, match="p.jsonl: doc d1 appears more than once"):
        predicted_documents([record, record], "p.jsonl")
    overlapping = {**record, "entities": record["entities"] + [{"label": "ORG", "start": 2, "end": 6}]}
    with pytest.raises(EvaluationInputError, match="p.jsonl: doc d1: entities 0:4 and 2:6 overlap"):
        predicted_documents([overlapping], "p.jsonl")
    assert predicted_documents([{**record, "entities": [{"label": "ORG", "start": 0, "end": 4}]}])["d1"].scores is None


def perturbed(docs, seed):
    """Predictions with the kinds of mistakes a model makes: dropped, shifted, relabelled, invented."""
    rng = random.Random(seed)
    out = {}
    for doc in docs:
        spans = []
        for s in doc.spans:
            roll = rng.random()
            if roll < 0.15:
                continue
            if roll < 0.3 and s.end - s.start > 1:
                s = Span(s.start + 1, s.end, s.label)
            elif roll < 0.4:
                s = Span(s.start, s.end, rng.choice([x for x in LABELS if x != s.label]))
            spans.append(s)
        if len(doc.text) > 10 and rng.random() < 0.5 and not any(s.start < 2 for s in spans):
            spans.insert(0, Span(0, 2, "ORG"))
        out[doc.doc_id] = PredictedDocument(doc.doc_id, doc.text, tuple(spans))
    return out


def test_counts_reproduce_seqeval_strict_on_the_corpus():
    docs = load_documents([CORPUS_EXPORT], LABELS)
    preds = perturbed(docs, seed=3)
    result = evaluate(docs, preds, LABELS)
    found = metrics.match_documents(docs, [preds[d.doc_id] for d in docs])
    scores = metrics.scores_from_totals(metrics.document_counts(docs, found, LABELS).sum(0))
    for j, label in enumerate(LABELS):
        expected = result.per_label[label]
        assert (expected.precision, expected.recall, expected.f1) == pytest.approx(
            (scores["precision"][j], scores["recall"][j], scores["f1"][j]), abs=1e-4
        )
    assert result.micro.f1 == pytest.approx(float(scores["micro_f1"]), abs=1e-4)
    assert result.macro.f1 == pytest.approx(float(scores["macro_f1"]), abs=2e-4)
    assert metrics.schema_scores(found, "strict").f1 == result.micro.f1


def test_bootstrap_by_hand_and_reproducible():
    # doc a: one correct entity; doc b: one wrong one. A resample holds 2, 1 or 0 copies of a, so
    # micro precision is 1, 1/2 or 0 with probability 1/4, 1/2, 1/4: the 95% interval is [0, 1].
    counts = np.array([[[1, 1, 1]], [[0, 1, 1]]])
    intervals = metrics.bootstrap_intervals(counts, ["ORG"], samples=2000, seed=1)
    assert intervals["micro avg"]["precision"] == metrics.Interval(0.0, 1.0)
    weights = metrics.resample_weights(2, 2000, seed=1)
    assert (weights.sum(1) == 2).all() and 0.45 < (weights[:, 0] == 1).mean() < 0.55
    # a single document gives no spread
    assert metrics.bootstrap_intervals(counts[:1], ["ORG"], samples=100)["ORG"]["f1"] == metrics.Interval(1.0, 1.0)
    docs = load_documents([CORPUS_EXPORT], LABELS)
    preds = perturbed(docs, seed=5)
    first = build_report(docs, preds, LABELS, samples=300, seed=11)
    again = build_report(docs, preds, LABELS, samples=300, seed=11)
    other = build_report(docs, preds, LABELS, samples=300, seed=12)
    assert first.intervals == again.intervals and first.intervals != other.intervals
    micro = first.intervals["micro avg"]["f1"]
    assert micro.low < first.result.micro.f1 < micro.high


def test_paired_bootstrap_by_hand():
    docs = load_documents([CORPUS_EXPORT], LABELS)
    gold_counts = metrics.document_counts(docs, metrics.match_documents(docs, docs), LABELS)
    nothing = gold_counts.copy()
    nothing[..., :2] = 0  # no predictions at all
    same = metrics.paired_bootstrap(gold_counts, gold_counts, LABELS, samples=200)
    assert same["micro avg"]["f1"] == metrics.Delta(1.0, 1.0, 0.0, 0.0, 0.0)
    assert not same["micro avg"]["f1"].excludes_zero
    better = metrics.paired_bootstrap(nothing, gold_counts, LABELS, samples=200)
    assert better["ORG"]["recall"] == metrics.Delta(0.0, 1.0, 1.0, 1.0, 1.0) and better["ORG"]["recall"].excludes_zero
    preds = perturbed(docs, seed=5)
    noisy = metrics.document_counts(docs, metrics.match_documents(docs, [preds[d.doc_id] for d in docs]), LABELS)
    delta = metrics.paired_bootstrap(noisy, gold_counts, LABELS, samples=500, seed=2)["micro avg"]["f1"]
    assert delta.low < delta.delta < delta.high and delta.low > 0
    assert delta == metrics.paired_bootstrap(noisy, gold_counts, LABELS, samples=500, seed=2)["micro avg"]["f1"]
