"""Per-character feature channels, their packing into one id, and the model's embedding of them."""

from __future__ import annotations

import torch

from policy_ner.features.channels import (
    SUPPORT_IN_CLAUSE,
    SUPPORT_IN_SENTENCE,
    Featurizer,
    amount_spans,
    gazetteer_matches,
    money_values,
    support_before,
)
from policy_ner.features.lexicon import (
    lac_feature_id,
    lac_features,
    lac_features_many,
    sentence_chunks,
    word_boundaries,
)
from policy_ner.model.modeling_policy_ner import FeatureEmbedding
from policy_ner.types import Document, Span

LABELS = ("ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT")


def test_amounts_cover_numbers_ranges_and_chinese_numerals_with_their_units():
    text = "给予最高1000万元安家补贴，资金300万，5万至10万元，奖励十万元，补贴50%，1万场演出"
    found = [text[s:e] for s, e in amount_spans(text)]
    assert found == ["1000万元", "300万", "5万至10万元", "十万元", "1万"]


def test_money_channel_says_whether_a_support_word_comes_first():
    text = "对台资企业给予一次性补贴5000元，企业年营业收入3000万元。土地成交总额8680万元"
    values = money_values(text)
    subsidy, revenue, land = (text.index(a) for a in ("5000元", "3000万元", "8680万元"))
    assert support_before(text, subsidy) == SUPPORT_IN_CLAUSE
    assert support_before(text, revenue) == SUPPORT_IN_SENTENCE  # 补贴 stands before the comma
    assert support_before(text, land) == 0  # the sentence ended in between
    assert values[subsidy : subsidy + 5] == [5, 6, 6, 6, 6]
    assert values[revenue] == 3 and values[land] == 1
    assert values[:subsidy] == [0] * subsidy


def test_gazetteer_matches_leftmost_longest_with_the_majority_label():
    featurizer = Featurizer(("gazetteer",), LABELS).fitted(
        [
            Document("a", "台资企业和台胞", (Span(0, 4, "POLICY_TARGET"), Span(5, 7, "POLICY_TARGET"))),
            Document("b", "区委台办台胞", (Span(0, 4, "ORG"), Span(4, 6, "POLICY_TARGET"))),
        ]
    )
    text = "支持台资企业，区委台办服务台胞"
    assert gazetteer_matches(text, featurizer.gazetteer) == [
        (2, 6, "POLICY_TARGET"),
        (7, 11, "ORG"),
        (13, 15, "POLICY_TARGET"),
    ]
    values = featurizer.values(text)
    assert values[2:6] == [3, 4, 4, 4] and values[7:11] == [1, 2, 2, 2] and values[:2] == [0, 0]


def test_training_values_leave_each_documents_own_mentions_out():
    docs = [
        Document("a", "服务台胞", (Span(2, 4, "POLICY_TARGET"),)),
        Document("b", "吸引台胞和台青", (Span(2, 4, "POLICY_TARGET"), Span(5, 7, "POLICY_TARGET"))),
        Document("b#aug1", "吸引台胞和台青", (Span(2, 4, "POLICY_TARGET"), Span(5, 7, "POLICY_TARGET"))),
    ]
    featurizer = Featurizer(("gazetteer",), LABELS).fitted(docs)
    a, b, b_copy = featurizer.training_values(docs, group=lambda d: d.split("#")[0])
    assert a[2:4] == [3, 4]  # 台胞 is also in b
    assert b[2:4] == [3, 4] and b[5:7] == [0, 0]  # 台青 only in b (and its copy, the same group)
    assert b_copy == b
    assert featurizer.values("吸引台青")[2:4] == [3, 4]  # at prediction time every mention counts


def test_packed_ids_unpack_to_each_channel_and_whitespace_carries_none():
    featurizer = Featurizer(("jieba", "lac", "money"), LABELS)
    text = "国务院台办发布通知。\n台胞可申请补贴5000元"
    packed = featurizer.values(text)
    assert len(packed) == len(text) and packed[text.index("\n")] == 0
    jieba, lac, money = word_boundaries(text), lac_features(text), money_values(text)
    sizes = featurizer.sizes
    for i, value in enumerate(packed):
        if not text[i].isspace():
            assert value == jieba[i] + sizes[0] * (lac[i] + sizes[1] * money[i])
    assert lac[0] == lac_feature_id("ORG-B")  # LAC tags 国务院台办 as an organisation
    assert max(packed) < featurizer.vocab_size

    embedding = FeatureEmbedding(sizes, 8)
    expected = (
        embedding.channels[0].weight[jieba[-1]]
        + embedding.channels[1].weight[lac[-1]]
        + embedding.channels[2].weight[money[-1]]
    )
    assert torch.allclose(embedding(torch.tensor([packed[-1]]))[0], expected)
    assert Featurizer.from_dict(featurizer.to_dict()) == featurizer


def test_sentence_chunks_cut_long_sentences():
    pieces = list(sentence_chunks("一二三。四五\n六七八九十", max_chars=3))
    assert pieces == [(0, 3), (3, 4), (4, 7), (7, 10), (10, 12)]


def test_lac_tags_of_a_text_do_not_depend_on_the_texts_analysed_with_it():
    texts = [
        "国务院台办发布通知。",
        "支持台资企业在泉州台商投资区发展，对符合条件的给予奖励。\n台胞可申请补贴",
        "补贴。",
    ]
    together = lac_features_many(texts)
    assert together == [lac_features(text) for text in texts]
    assert together[0][0] == lac_feature_id("ORG-B") and together[1][-3] != 0 and together[1][28] == 0  # the newline
    featurizer = Featurizer(("jieba", "lac", "money"), LABELS)
    assert featurizer.values_many(texts) == [featurizer.values(text) for text in texts]
