"""The comparison baselines, trained and run on real annotated documents."""

from __future__ import annotations

import pytest

from conftest import CORPUS_EXPORT, LABELS, TINY_DEV_DOC, TINY_TRAIN_DOCS
from policy_ner.evaluate.baselines import CrfTagger, LacOrgTagger, WordListTagger, make_baseline
from policy_ner.labelstudio.exports import load_documents
from policy_ner.scoring import PredictedDocument, evaluate


@pytest.fixture(scope="module")
def corpus():
    return {d.doc_id: d for d in load_documents([CORPUS_EXPORT], LABELS)}


def score(tagger, documents):
    found = tagger.predict([d.text for d in documents])
    predicted = {
        d.doc_id: PredictedDocument(d.doc_id, d.text, tuple(e.as_span() for e in entities))
        for d, entities in zip(documents, found)
    }
    return evaluate(documents, predicted, LABELS)


def test_word_list_matches_training_mentions_longest_first_and_amounts_after_support_words(corpus):
    tagger = WordListTagger().fit([corpus[d] for d in TINY_TRAIN_DOCS])
    assert tagger.lexicon["国家高新技术企业"] == "POLICY_TARGET"
    text = "对认定的国家高新技术企业给予一次性创业补贴5000元，企业年营业收入3000万元。"
    found = [(e.text, e.label) for e in tagger.predict([text])[0]]
    assert ("国家高新技术企业", "POLICY_TARGET") in found
    assert ("5000元", "SUBSIDY_AMOUNT") in found
    assert ("3000万元", "SUBSIDY_AMOUNT") not in found  # revenue, no support word before it
    for entity in tagger.predict([text])[0]:
        assert text[entity.start : entity.end] == entity.text


def test_crf_fits_its_training_documents_and_generalises(corpus):
    train = [d for doc_id, d in corpus.items() if doc_id != TINY_DEV_DOC]
    tagger = CrfTagger(max_iterations=60).fit(train)
    on_train = score(tagger, train[:5])
    assert on_train.micro.f1 >= 0.9, on_train.per_label
    on_dev = score(tagger, [corpus[TINY_DEV_DOC]])
    assert on_dev.micro.f1 > 0.3, on_dev.per_label


def test_lac_finds_organisations_only_with_exact_offsets():
    text = "国务院台办和福建省人民政府联合发布通知，台胞可以申请补贴。"
    (entities,) = LacOrgTagger().predict([text])
    assert entities and {e.label for e in entities} == {"ORG"}
    assert "福建省人民政府" in {e.text for e in entities}
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_unknown_baseline_names_the_choices():
    with pytest.raises(ValueError, match="wordlist, crf, lac"):
        make_baseline("bilstm")
