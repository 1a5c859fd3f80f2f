"""Character IOB2 tags and sliding windows."""

from __future__ import annotations

import pytest

from conftest import CORPUS_EXPORT, LABELS
from policy_ner.config import config_from_dict
from policy_ner.labelstudio.exports import load_documents
from policy_ner.model.encoding import IGNORE_INDEX, encode_text, plan_windows
from policy_ner.model.network import build_char_vocab, char_tokenizer
from policy_ner.tags import char_tags, spans_from_tags
from policy_ner.train.dataset import count_windows, pack_groups, training_examples, training_windows
from policy_ner.types import Document, Span

TAGS = config_from_dict({"name": "t", "labels": LABELS}).tags


def test_tags_round_trip_every_corpus_document():
    for doc in load_documents([CORPUS_EXPORT], LABELS):
        tags = char_tags(doc.text, doc.spans)
        assert len(tags) == len(doc.text)
        assert tuple(spans_from_tags(tags)) == doc.spans


def test_spans_from_tags_treats_a_stray_inside_tag_as_a_start():
    assert spans_from_tags(["O", "I-ORG", "I-ORG", "B-ORG", "I-POLICY_TARGET"]) == [
        Span(1, 3, "ORG"),
        Span(3, 4, "ORG"),
        Span(4, 5, "POLICY_TARGET"),
    ]


@pytest.mark.parametrize("shift", [0, 1, 9, 21])
def test_windows_cover_every_token_with_the_configured_overlap(shift):
    for n in (0, 1, 10, 30, 31, 97, 1000):
        windows = plan_windows(n, content_length=30, stride=8, shift=shift)
        covered = set()
        for start, end in windows:
            assert 0 <= start < end <= n and end - start <= 30
            covered |= set(range(start, end))
        assert covered == set(range(n))
        for (_, e1), (s2, _) in zip(windows, windows[1:]):
            assert e1 - s2 >= 8  # consecutive windows share at least `stride` tokens


def test_encoding_skips_whitespace_and_keeps_non_bmp_characters():
    text = "𠮷 台胞\u3000😀5000元\n"
    tokenizer = char_tokenizer(build_char_vocab(["台胞元"]))
    encoded = encode_text(text, tokenizer)
    assert encoded.units == [0, 2, 3, 5, 6, 7, 8, 9, 10]  # the space, U+3000 and \n carry no tag
    assert len(encoded.input_ids) == 9
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids)[:3] == ["[UNK]", "台", "胞"]


def test_encoding_a_character_at_a_time_matches_the_tokenizer_on_the_whole_text():
    from transformers import BertTokenizer

    wordpiece = BertTokenizer(
        vocab={
            t: i
            for i, t in enumerate(
                ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "台", "胞", "a", "e", "5", "0", "元", "##0"]
            )
        },
        do_lower_case=True,
        strip_accents=True,
    )
    texts = ["台胞 A\tÉ5000元\u3000𠮷😀\r\n", "é台", "", "\n\n"]
    for tokenizer in (wordpiece, char_tokenizer(build_char_vocab(["台胞元5"]))):
        for text in texts * 2:  # the second time from the remembered characters
            encoded = encode_text(text, tokenizer)
            whole = tokenizer(list(text), is_split_into_words=True, add_special_tokens=False) if text else None
            assert encoded.input_ids == (whole["input_ids"] if text else [])
            assert encoded.token_chars == (whole.word_ids() if text else [])
    assert wordpiece.convert_ids_to_tokens(encode_text("É", wordpiece).input_ids) == ["e"]


def test_an_entity_straddling_a_window_boundary_is_whole_in_a_later_window():
    text = "第一条" + "。" * 20 + "台商区民生保障局负责" + "。" * 20
    start = text.index("台商区民生保障局")
    doc = Document("d", text, (Span(start, start + 8, "ORG"),))
    tokenizer = char_tokenizer(build_char_vocab([text]))
    dataset = training_windows(training_examples([doc], tokenizer, TAGS), tokenizer, max_length=2 + 26, stride=12)
    windows = dataset.to_dict()
    starts = windows["token_start"]
    assert starts[0] == 0 and starts[1] == 14  # the first window (0..26) cuts the entity (23..31)
    b_org, i_org = TAGS.index("B-ORG"), TAGS.index("I-ORG")
    first_labels = windows["labels"][0]
    assert first_labels[0] == IGNORE_INDEX and first_labels[-1] == IGNORE_INDEX  # [CLS], [SEP]
    assert first_labels[1 + start] == b_org and first_labels[-2] == i_org  # cut: B at 23, I up to 25
    whole = windows["labels"][1][1 + start - 14 : 1 + start - 14 + 8]
    assert whole == [b_org] + [i_org] * 7


def test_count_windows_matches_the_windows_built():
    docs = load_documents([CORPUS_EXPORT], LABELS)[:5]
    tokenizer = char_tokenizer(build_char_vocab([d.text for d in docs]))
    examples = training_examples(docs, tokenizer, TAGS)
    assert count_windows(examples, 64, 16) == len(training_windows(examples, tokenizer, 64, 16)) > 5


def test_pack_groups_fill_each_window_in_order_with_a_separator_between_neighbours():
    assert pack_groups([3, 3, 3, 10, 1, 12, 2], content_length=10) == [[0, 1], [2], [3], [4], [5], [6]]
    assert pack_groups([2, 2, 2, 2], content_length=11) == [[0, 1, 2, 3]]  # 4 x 2 + 3 separators
    assert pack_groups([], content_length=10) == []


def test_packed_windows_hold_every_short_document_whole_and_leave_long_ones_alone():
    from policy_ner.features.channels import Featurizer

    long_doc = load_documents([CORPUS_EXPORT], LABELS)[0]
    sentences = [
        Document(f"s{i}", text, (Span(text.index("台胞"), text.index("台胞") + 2, "POLICY_TARGET"),))
        for i, text in enumerate(["支持台胞创业。", "为台胞提供住房保障", "台胞子女就学", "鼓励台胞来区就业。"] * 3)
    ]
    docs = [sentences[0], long_doc, *sentences[1:]]
    tokenizer = char_tokenizer(build_char_vocab([d.text for d in docs]))
    featurizer = Featurizer(("jieba", "money"), tuple(LABELS), dense=("lac_emissions",))
    examples = training_examples(docs, tokenizer, TAGS, featurizer)
    unpacked = training_windows(examples, tokenizer, 40, 8).to_dict()
    packed = training_windows(examples, tokenizer, 40, 8, pack=True).to_dict()

    assert count_windows(examples, 40, 8, pack=True) == len(packed["doc_id"]) < len(unpacked["doc_id"])
    long_rows = [i for i, doc_id in enumerate(unpacked["doc_id"]) if doc_id == long_doc.doc_id]
    assert [packed["input_ids"][i] for i, d in enumerate(packed["doc_id"]) if d == long_doc.doc_id] == [
        unpacked["input_ids"][i] for i in long_rows
    ]
    alone = {doc_id: i for i, doc_id in enumerate(unpacked["doc_id"]) if doc_id.startswith("s")}
    sep = tokenizer.sep_token_id
    seen = []
    for row, doc_ids in enumerate(packed["doc_id"]):
        if doc_ids == long_doc.doc_id:
            continue
        ids, labels, dense = packed["input_ids"][row], packed["labels"][row], packed["dense_features"][row]
        assert len(ids) <= 40 and ids[0] == tokenizer.cls_token_id and ids[-1] == sep
        cut = [0, *(i for i, token in enumerate(ids) if token == sep)]
        assert len(cut) - 1 == len(doc_ids.split(" + "))
        for doc_id, start, end in zip(doc_ids.split(" + "), cut, cut[1:]):
            single = alone[doc_id]  # each piece is that document's own window, labels and dense rows included
            assert ids[start + 1 : end] == unpacked["input_ids"][single][1:-1]
            assert labels[start + 1 : end] == unpacked["labels"][single][1:-1] and labels[end] == IGNORE_INDEX
            assert dense[start + 1 : end] == unpacked["dense_features"][single][1:-1]
            seen.append(doc_id)
    assert sorted(seen) == sorted(d.doc_id for d in sentences)  # each once


def test_shifted_windows_start_elsewhere():
    assert [s for s, _ in plan_windows(100, 30, 8)] == [0, 22, 44, 66, 70]
    assert [s for s, _ in plan_windows(100, 30, 8, shift=5)] == [0, 5, 27, 49, 70]


def test_word_boundary_features_follow_jieba_words():
    from policy_ner.features.lexicon import BEGIN, END, MIDDLE, NONE, SINGLE, word_boundaries

    text = "对台资企业给予 5000元补贴"
    features = word_boundaries(text)
    assert len(features) == len(text)
    assert features[text.index(" ")] == NONE
    assert features[1:5] == [BEGIN, END, BEGIN, END]  # 台资 / 企业
    assert set(features) <= {NONE, BEGIN, MIDDLE, END, SINGLE}
    tokenizer = char_tokenizer(build_char_vocab([text]))
    encoded = encode_text(text, tokenizer, features)
    assert encoded.token_types == [features[c] for c in encoded.token_chars]
    assert encode_text(text, tokenizer).token_types == [0] * len(encoded.input_ids)


def test_training_and_prediction_frame_identical_windows(tmp_path):
    from policy_ner.features.channels import Featurizer
    from policy_ner.model.encoding import encode_text
    from policy_ner.model.predictor import Predictor

    doc = load_documents([CORPUS_EXPORT], LABELS)[0]
    tokenizer = char_tokenizer(build_char_vocab([doc.text]))
    featurizer = Featurizer(("jieba", "money"), tuple(LABELS))
    windows = training_windows(training_examples([doc], tokenizer, TAGS, featurizer), tokenizer, 40, 8)
    predictor = Predictor(None, tokenizer, TAGS, 40, 8, features=featurizer, runtime=object())
    encoded = predictor.encode([doc.text])
    planned = [(0, start, end) for start, end in plan_windows(len(encoded[0].input_ids), 38, 8)]
    served = predictor.framed_windows(encoded, planned)
    assert len(served) == len(windows) > 3
    assert [row["input_ids"] for row in served] == windows["input_ids"]
    assert [row["token_type_ids"] for row in served] == windows["token_type_ids"]
    assert any(any(types) for types in windows["token_type_ids"])  # the features are really there
    assert encoded[0].input_ids == encode_text(doc.text, tokenizer, featurizer.values(doc.text)).input_ids


def test_a_retrain_on_unchanged_documents_reads_the_examples_from_the_cache(tmp_path, monkeypatch):
    from policy_ner.features.channels import Featurizer

    docs = load_documents([CORPUS_EXPORT], LABELS)[:4]
    tokenizer = char_tokenizer(build_char_vocab([d.text for d in docs]))
    featurizer = Featurizer(("jieba", "money"), tuple(LABELS))
    messages = []
    first = training_examples(docs, tokenizer, TAGS, featurizer, cache_dir=tmp_path, log=messages.append)
    assert len(list(tmp_path.glob("examples-*.arrow"))) == 1 and "written to" in messages[-1]

    def no_featurizing(*args, **kwargs):
        raise AssertionError("featurized again")

    monkeypatch.setattr(Featurizer, "values_for", no_featurizing)
    again = training_examples(docs, tokenizer, TAGS, featurizer, cache_dir=tmp_path, log=messages.append)
    assert "read from" in messages[-1]
    assert again.to_dict() == first.to_dict() and len(again) == 4
    edited = [docs[0], docs[1], docs[2], Document(docs[3].doc_id, docs[3].text, docs[3].spans[1:])]
    with pytest.raises(AssertionError, match="featurized again"):  # a changed span is another fingerprint
        training_examples(edited, tokenizer, TAGS, featurizer, cache_dir=tmp_path)
