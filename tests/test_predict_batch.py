"""`policy-ner predict` over real inputs with the real tiny model: every input kind and encoding, every
bad-input case, the three output formats, --resume after a cut-off run, and the ONNX runtimes."""

from __future__ import annotations

import codecs
import csv
import io
import json
import shutil
import sys

import numpy as np
import pytest

from conftest import LABELS, TINY_DEV_DOC, TINY_TRAIN_DOCS
from policy_ner.cli import main
from policy_ner.labelstudio.exports import load_documents, read_exports
from policy_ner.model.predictor import Predictor, predict_documents, set_batch_threads
from policy_ner.predict.batch import EXIT_SKIPPED, Progress, predict_files
from policy_ner.predict.inputs import BadInput, decode_text
from policy_ner.predict.outputs import read_predictions
from policy_ner.scoring import evaluate

pytestmark = pytest.mark.slow

NO_ENTITY_TEXT = "本办法自发布之日起施行。"
"""A sentence in which the tiny model finds nothing (checked where it matters)."""


@pytest.fixture(scope="module")
def documents(tiny_project):
    return {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)}


@pytest.fixture(scope="module")
def predictor(tiny_model):
    return Predictor.from_pretrained(tiny_model)


def spans(entities) -> list[tuple]:
    return [
        (e["label"], e["start"], e["end"], e["text"]) if isinstance(e, dict) else (e.label, e.start, e.end, e.text)
        for e in entities
    ]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records_by_id(path) -> dict[str, dict]:
    return {r["doc_id"]: r for r in read_predictions(path)}


# --- decoding ---------------------------------------------------------------------------------

BIG5_TEXT = (
    "為支持臺灣同胞在大陸創業就業，對符合條件的臺資企業給予最高300萬元補貼。臺灣青年來廈門實習，每人每月補助2000元。"
)


@pytest.mark.parametrize(
    "data, text, encoding",
    [
        ("对台资企业给予补贴。".encode(), "对台资企业给予补贴。", "utf-8"),
        (codecs.BOM_UTF8 + "对台资企业\r\n补贴。".encode(), "对台资企业\r\n补贴。", "utf-8-sig"),
        ("对台资企业给予最高300万元补贴。".encode("gbk"), "对台资企业给予最高300万元补贴。", "gb18030"),
        ("扶持𠮷企业。".encode("gb18030"), "扶持𠮷企业。", "gb18030"),  # four-byte GB18030, beyond GBK
        (BIG5_TEXT.encode("big5"), BIG5_TEXT, "big5"),  # which GB18030 decodes too, as other characters
        ("對臺資企業給予補貼".encode("big5"), "對臺資企業給予補貼", "big5"),
    ],
)
def test_text_is_decoded_unmodified_and_its_encoding_named(data, text, encoding):
    assert decode_text(data) == (text, encoding)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file (NUL bytes)"),
        (b"abc\x01\x02\x03\x04def" * 3, "binary file (12 control characters)"),
        (
            b"\x80\x80 caf\xff",
            "undecodable: not UTF-8 (byte 0x80 at offset 0); not GB18030 (byte 0x80 at offset 0); "
            "not BIG5 (byte 0x80 at offset 0)",
        ),
        (
            "台胞補貼".encode("gb18030"),
            "ambiguous encoding: not UTF-8 (byte 0xb0 at offset 2), and it reads equally well as GB18030 and as "
            "Big5; convert it to UTF-8",
        ),
        ("补贴".encode("utf-16"), "UTF-16 text is not supported; convert it to UTF-8"),
        (b"", "empty"),
        (codecs.BOM_UTF8, "empty"),
        (" \n\t\u3000\n".encode("utf-8"), "empty (whitespace only)"),
    ],
)
def test_bytes_that_are_not_a_text_document_are_refused_with_the_reason(data, reason):
    with pytest.raises(BadInput) as refused:
        decode_text(data)
    assert str(refused.value) == reason


# --- input kinds --------------------------------------------------------------------------------


def test_folder_recursive_with_glob_in_every_encoding(tiny_model, documents, predictor, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "nested" / "deeper").mkdir(parents=True)
    a, b, c = TINY_TRAIN_DOCS[0], TINY_TRAIN_DOCS[1], TINY_DEV_DOC
    (folder / f"{a}.txt").write_bytes(documents[a].text.encode("utf-8"))
    crlf_text = documents[b].text.replace("\n", "\r\n")
    (folder / "nested" / f"{b}.txt").write_bytes(codecs.BOM_UTF8 + crlf_text.encode("utf-8"))
    (folder / "nested" / "deeper" / f"{c}.txt").write_bytes(documents[c].text.encode("gb18030"))
    (folder / "nested" / "notes.md").write_text("不是文档", encoding="utf-8")
    (folder / "taiwan.txt").write_bytes(BIG5_TEXT.encode("big5"))

    output = tmp_path / "all.jsonl"
    code, out, _ = run(capsys, tiny_model, folder, "--output", output)
    assert code == 0
    assert "4 documents" in out and "encodings: big5 1, gb18030 1, utf-8 1, utf-8-sig 1" in out
    records = records_by_id(output)
    assert list(records) == [a, b, c, "taiwan"]  # sorted paths: a.txt, nested/b.txt, nested/deeper/c.txt, taiwan.txt
    assert records["taiwan"]["text"] == BIG5_TEXT and records["taiwan"]["encoding"] == "big5"
    assert spans(records["taiwan"]["entities"]) == spans(predictor.predict_one(BIG5_TEXT))
    assert records[b]["text"] == crlf_text  # BOM dropped, CRLF kept: offsets index the text as decoded
    assert records[c]["text"] == documents[c].text
    assert [records[d]["encoding"] for d in (a, b, c)] == ["utf-8", "utf-8-sig", "gb18030"]
    assert records[c]["source"] == str(folder / "nested" / "deeper" / f"{c}.txt")
    for doc_id in (a, c):  # the GB18030 file gives exactly what its text gives
        assert spans(records[doc_id]["entities"]) == spans(predictor.predict_one(documents[doc_id].text))
    assert records[a]["entities"], "the tiny model finds entities in its training documents"
    for record in records.values():
        for entity in record["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]

    top_only = tmp_path / "top.jsonl"
    assert run(capsys, tiny_model, folder, "--glob", "*.txt", "--output", top_only)[0] == 0
    assert list(records_by_id(top_only)) == [a, "taiwan"]


def test_jsonl_with_configured_fields_and_standard_input(
    tiny_model, documents, predictor, tmp_path, capsys, monkeypatch
):
    a, b = TINY_TRAIN_DOCS[0], TINY_TRAIN_DOCS[2]
    jsonl = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"id": a, "content": documents[a].text}, ensure_ascii=False),
        "",  # blank lines are not documents
        json.dumps({"id": 17, "content": documents[b].text, "other": [1, 2]}, ensure_ascii=False),
    ]
    jsonl.write_bytes(("\n".join(lines) + "\n").encode("gb18030"))  # a GBK-encoded JSONL file
    output = tmp_path / "jsonl.jsonl"
    code, _, _ = run(capsys, tiny_model, jsonl, "--text-field", "content", "--id-field", "id", "--output", output)
    assert code == 0
    records = records_by_id(output)
    assert list(records) == [a, "17"]
    assert records["17"]["text"] == documents[b].text and records["17"]["source"] == f"{jsonl}:3"
    assert records[a]["encoding"] == "gb18030"
    assert spans(records["17"]["entities"]) == spans(predictor.predict_one(documents[b].text))

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(documents[a].text.encode("utf-8"))))
    from_stdin = tmp_path / "stdin.jsonl"
    assert run(capsys, tiny_model, "-", "--output", from_stdin)[0] == 0
    (record,) = read_predictions(from_stdin)
    assert record["doc_id"] == "stdin" and record["source"] == "<stdin>" and record["text"] == documents[a].text
    assert spans(record["entities"]) == spans(records[a]["entities"])

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(jsonl.read_bytes())))
    stdin_jsonl = tmp_path / "stdin-jsonl.jsonl"
    assert (
        run(
            capsys,
            tiny_model,
            "-",
            "--input-format",
            "jsonl",
            "--text-field",
            "content",
            "--id-field",
            "id",
            "--output",
            stdin_jsonl,
        )[0]
        == 0
    )
    assert [(r["doc_id"], r["source"]) for r in read_predictions(stdin_jsonl)] == [
        (a, "<stdin>:1"),
        ("17", "<stdin>:3"),
    ]


# --- bad inputs ---------------------------------------------------------------------------------


def test_bad_inputs_are_reported_with_their_path_skipped_and_listed(tiny_model, documents, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "copy").mkdir(parents=True)
    good = TINY_TRAIN_DOCS[0]
    (folder / f"{good}.txt").write_text(documents[good].text, encoding="utf-8")
    (folder / "copy" / f"{good}.txt").write_text("同名的另一个文件。", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "broken.txt").write_bytes(b"\x80\x80 caf\xff")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text("  \n\n", encoding="utf-8")
    (folder / "wide.txt").write_bytes("补贴".encode("utf-16"))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"doc_id": "ok", "text": NO_ENTITY_TEXT}, ensure_ascii=False),
                '{"doc_id": "cut", "text": "半行',
                json.dumps({"doc_id": "no-text", "body": "x"}),
                json.dumps({"text": "没有编号"}, ensure_ascii=False),
                json.dumps({"doc_id": "blank", "text": "   "}),
                json.dumps(["not", "an", "object"]),
            ]
        )
        + "\n",
        encoding="utf-8",
    )

    output = tmp_path / "out.jsonl"
    code, out, err = run(capsys, tiny_model, folder, jsonl, "--output", output)
    assert code == EXIT_SKIPPED == 3
    assert sorted(records_by_id(output)) == sorted([good, "ok"])
    assert "2 documents" in out
    expected = [
        f"{folder / 'binary.txt'}: binary file (NUL bytes)",
        f"{folder / 'blank.txt'}: empty (whitespace only)",
        f"{folder / 'broken.txt'}: undecodable: not UTF-8",
        f"{folder / 'copy' / (good + '.txt')}: doc id {good} already read from {folder / (good + '.txt')}",
        f"{folder / 'empty.txt'}: empty",
        f"{folder / 'wide.txt'}: UTF-16 text is not supported",
        f"{jsonl}:2: not JSON",
        f"{jsonl}:3: doc no-text: no 'text' string field",
        f"{jsonl}:4: no 'doc_id' field",
        f"{jsonl}:5: doc blank: empty (whitespace only)",
        f"{jsonl}:6: not a JSON object",
    ]
    listing = err[err.index("skipped 11 input(s):") :]
    for message in expected:
        assert f"skipped {message}" in err  # reported as it happens
        assert f"  {message}" in listing  # and listed at the end
    assert "11 skipped" in err  # in the progress line


def test_missing_inputs_and_an_existing_output_stop_before_any_work(tiny_model, documents, tmp_path, capsys):
    (tmp_path / "empty-folder").mkdir()
    code, _, err = run(capsys, tiny_model, tmp_path / "empty-folder", "--output", tmp_path / "o.jsonl")
    assert code == 1 and "empty-folder: folder holds no file matching **/*.txt" in err
    assert not (tmp_path / "o.jsonl").exists()

    doc = tmp_path / "doc.txt"
    doc.write_text(NO_ENTITY_TEXT, encoding="utf-8")
    output = tmp_path / "o.jsonl"
    output.write_text("earlier results\n", encoding="utf-8")
    code, _, err = run(capsys, tiny_model, doc, "--output", output)
    assert code == 1 and "already exists; pass --resume to continue it or --overwrite" in err
    assert output.read_text(encoding="utf-8") == "earlier results\n"
    assert run(capsys, tiny_model, doc, "--output", output, "--overwrite")[0] == 0
    assert [r["doc_id"] for r in read_predictions(output)] == ["doc"]
    code, _, err = run(capsys, tiny_model, doc, "--output", tmp_path / "o.txt")
    assert code == 1 and "cannot tell the output format" in err


# --- output formats -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def input_folder(documents, tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    for doc_id in [*TINY_TRAIN_DOCS, TINY_DEV_DOC]:
        (folder / f"{doc_id}.txt").write_text(documents[doc_id].text, encoding="utf-8")
    (folder / "zz_quiet.txt").write_text(NO_ENTITY_TEXT, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def reference_outputs(tiny_model, input_folder, tmp_path_factory):
    """Each output format written by one uninterrupted run over `input_folder`."""
    folder = tmp_path_factory.mktemp("reference")
    outputs = {}
    for fmt, name in (("jsonl", "out.jsonl"), ("csv", "out.csv"), ("labelstudio", "out.json")):
        assert main(["predict", str(tiny_model), str(input_folder), "--output", str(folder / name), "--quiet"]) == 0
        outputs[fmt] = folder / name
    return outputs


def test_csv_has_one_row_per_entity_and_a_row_for_a_document_without_any(reference_outputs):
    records = records_by_id(reference_outputs["jsonl"])
    assert records["zz_quiet"]["entities"] == []
    raw = reference_outputs["csv"].read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == ["doc_id", "label", "start", "end", "text", "score", "source", "encoding", "model_version"]
    for doc_id, record in records.items():
        doc_rows = [r for r in rows if r["doc_id"] == doc_id]
        if not record["entities"]:
            assert [(r["label"], r["start"], r["text"]) for r in doc_rows] == [("", "", "")]
            continue
        assert [(r["label"], int(r["start"]), int(r["end"]), r["text"]) for r in doc_rows] == spans(record["entities"])
        assert [float(r["score"]) for r in doc_rows] == [e["score"] for e in record["entities"]]
        assert {r["encoding"] for r in doc_rows} == {"utf-8"}


def test_label_studio_tasks_import_as_predictions(reference_outputs, tiny_model):
    tasks = json.loads(reference_outputs["labelstudio"].read_text(encoding="utf-8"))
    records = records_by_id(reference_outputs["jsonl"])
    assert [t["data"]["doc_id"] for t in tasks] == list(records)
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == tiny_model.name
        results = prediction["result"]
        assert [
            (r["value"]["labels"][0], r["value"]["start"], r["value"]["end"], r["value"]["text"]) for r in results
        ] == spans(records[task["data"]["doc_id"]]["entities"])
        assert all(r["from_name"] == "label" and r["to_name"] == "text" and 0 < r["score"] <= 1 for r in results)
        assert task["data"]["text"] == records[task["data"]["doc_id"]]["text"]
    # the project's own Label Studio reader takes the file: tasks with predictions only, no problem
    reading = read_exports([reference_outputs["labelstudio"]], LABELS)
    assert not reading.issues and len(reading.unannotated_tasks) == len(tasks) and not reading.documents


# --- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "labelstudio"])
@pytest.mark.parametrize("cut_in", ["017_gwr_fujian_mintai5y", "zz_quiet"])
def test_resume_after_a_cut_off_run_gives_the_uninterrupted_output(
    fmt, cut_in, tiny_model, input_folder, reference_outputs, tmp_path, capsys
):
    reference = reference_outputs[fmt].read_bytes()
    output = tmp_path / reference_outputs[fmt].name
    # killed while writing the record of document `cut_in` (the third, or the last), mid-character even
    cut = reference.index(cut_in.encode()) + 31
    output.write_bytes(reference[:cut])
    code, out, _ = run(capsys, tiny_model, input_folder, "--output", output, "--resume")
    assert code == 0 and "already there" in out
    assert output.read_bytes() == reference

    code, out, _ = run(capsys, tiny_model, input_folder, "--output", output, "--resume")  # nothing left to do
    # a CSV cannot show whether its last document's rows are all there: that one is always predicted again
    assert (
        code == 0 and (": 1 documents (5 already there)" if fmt == "csv" else ": 0 documents (6 already there)") in out
    )
    assert output.read_bytes() == reference


def test_an_interrupted_run_leaves_a_valid_file_and_resume_completes_it(
    tiny_model, input_folder, reference_outputs, tmp_path
):
    class InterruptedAfterTwoBatches(Predictor):
        batches = 0

        def predict_encoded(self, encoded):
            type(self).batches += 1
            if self.batches > 2:
                raise KeyboardInterrupt
            return super().predict_encoded(encoded)

    interrupted = InterruptedAfterTwoBatches.from_pretrained(tiny_model)
    output = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt):
        predict_files(interrupted, [input_folder], output, batch_documents=1)
    tasks = json.loads(output.read_text(encoding="utf-8"))  # closed properly on the way out
    assert len(tasks) == 2
    summary = predict_files(Predictor.from_pretrained(tiny_model), [input_folder], output, resume=True)
    assert (summary.resumed, summary.documents) == (2, 4)
    assert output.read_bytes() == reference_outputs["labelstudio"].read_bytes()


@pytest.mark.parametrize("overlap", [True, False])
def test_a_document_that_fails_in_the_model_is_skipped_and_its_batch_still_written(
    tiny_model, input_folder, reference_outputs, tmp_path, overlap
):
    failing = "zz_quiet"

    class FailsOnOneText(Predictor):
        def encode(self, texts):
            if NO_ENTITY_TEXT in texts:
                raise RuntimeError("analyser crashed")
            return super().encode(texts)

    output = tmp_path / "out.jsonl"
    summary = predict_files(FailsOnOneText.from_pretrained(tiny_model), [input_folder], output, overlap=overlap)
    assert summary.exit_code == EXIT_SKIPPED and summary.documents == 5
    (skipped,) = summary.skipped
    assert (
        skipped.source.endswith(f"{failing}.txt")
        and "prediction failed (RuntimeError: analyser crashed)" in skipped.reason
    )
    expected = [r for r in records_by_id(reference_outputs["jsonl"]).values() if r["doc_id"] != failing]
    assert list(records_by_id(output).values()) == expected


def test_resume_refuses_a_file_damaged_before_its_end(tiny_model, input_folder, reference_outputs, tmp_path, capsys):
    lines = reference_outputs["jsonl"].read_text(encoding="utf-8").splitlines(keepends=True)
    output = tmp_path / "out.jsonl"
    output.write_text(lines[0] + "garbage\n" + lines[1], encoding="utf-8")
    before = output.read_bytes()
    code, _, err = run(capsys, tiny_model, input_folder, "--output", output, "--resume")
    assert code == 1 and f"{output}:2: not a prediction record; cannot resume" in err
    assert output.read_bytes() == before


def test_progress_line_counts_documents_speed_and_time_left(predictor, input_folder, tmp_path):
    stream = io.StringIO()
    summary = predict_files(predictor, [input_folder], tmp_path / "o.jsonl", progress=stream)
    assert summary.exit_code == 0 and summary.documents == 6
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("100% |") and "| 6/6 docs | " in last and " chars/s | elapsed " in last
    assert last.endswith("ETA 00:00")
    characters = int(last.split(" | ")[1].split()[0].replace(",", ""))
    assert characters > 0 and summary.characters == sum(
        len(p.read_text(encoding="utf-8")) for p in input_folder.iterdir()
    )
    assert "docs" in Progress(io.StringIO(), None, 0).line()  # standard input: no total, no ETA


# --- ONNX -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(tiny_model, tmp_path_factory):
    """A copy of the tiny model with its ONNX export in the default place, made through the CLI."""
    model_dir = tmp_path_factory.mktemp("onnx") / tiny_model.name
    shutil.copytree(tiny_model, model_dir)
    assert main(["export-onnx", str(model_dir)]) == 0
    assert {p.name for p in (model_dir / "onnx").iterdir()} == {"model.onnx", "model.int8.onnx"}
    return model_dir


def test_onnx_fp32_predictions_match_torch_on_the_test_documents(onnx_model, documents, predictor):
    texts = [d.text for d in documents.values()]
    from_torch = predictor.predict(texts)
    from_onnx = Predictor.from_pretrained(onnx_model, runtime="onnx").predict(texts)
    assert sum(map(len, from_torch)) > 50
    assert [spans(d) for d in from_onnx] == [spans(d) for d in from_torch]
    # scores are rounded to 4 decimals; float32 noise may move one across a rounding boundary
    assert max(abs(a.score - b.score) for x, y in zip(from_onnx, from_torch) for a, b in zip(x, y)) <= 1.5e-4


def test_onnx_int8_loses_at_most_half_an_f1_point(onnx_model, documents, predictor):
    gold = list(documents.values())
    f1 = {
        name: evaluate(gold, predict_documents(p, gold), LABELS).micro.f1
        for name, p in (("torch", predictor), ("int8", Predictor.from_pretrained(onnx_model, runtime="onnx-int8")))
    }
    assert f1["torch"] > 0.5
    assert f1["int8"] >= f1["torch"] - 0.005, f1


def test_predict_with_onnx_runtime_through_the_cli(onnx_model, input_folder, reference_outputs, tmp_path, capsys):
    output = tmp_path / "onnx.jsonl"
    assert run(capsys, onnx_model, input_folder, "--runtime", "onnx", "--threads", "1", "--output", output)[0] == 0
    expected = records_by_id(reference_outputs["jsonl"])
    assert {d: spans(r["entities"]) for d, r in records_by_id(output).items()} == {
        d: spans(r["entities"]) for d, r in expected.items()
    }

    code, _, err = run(
        capsys,
        onnx_model,
        input_folder,
        "--runtime",
        "onnx",
        "--onnx-dir",
        tmp_path / "none",
        "--output",
        tmp_path / "x.jsonl",
    )
    assert code == 1 and "model.onnx: no ONNX model there; run `policy-ner export-onnx" in err


def test_onnx_export_of_a_conv_and_crf_head_decodes_like_torch(tiny_model, documents, tmp_path):
    """The other head: the graph gives the CRF's emissions and the ONNX predictor decodes with the CRF
    scores saved in the model settings. A randomly initialised model (random transitions too) tags
    plenty, which is what a parity check needs."""
    import torch
    from transformers import AutoTokenizer

    from policy_ner.model.export import export_onnx
    from policy_ner.model.network import PolicyNerBertConfig, PolicyNerBertForTokenClassification, crf_parameters

    settings = json.loads((tiny_model / "policy_ner.json").read_text(encoding="utf-8"))
    tags = settings["tags"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = PolicyNerBertForTokenClassification(
        PolicyNerBertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            type_vocab_size=5,
            num_labels=len(tags),
            id2label=dict(enumerate(tags)),
            label2id={t: i for i, t in enumerate(tags)},
            conv_layers=1,
            crf=True,
        )
    ).eval()
    with torch.no_grad():
        model.crf_transitions.normal_(0, 2)
        model.crf_start.normal_(0, 2)
    model_dir = tmp_path / "crf-model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "policy_ner.json").write_text(json.dumps({**settings, "crf": crf_parameters(model)}), encoding="utf-8")

    result = export_onnx(model_dir)
    assert result.max_difference < 1e-4
    texts = [d.text for d in documents.values()]
    from_torch = Predictor.from_pretrained(model_dir).predict(texts)
    from_onnx = Predictor.from_pretrained(model_dir, runtime="onnx").predict(texts)
    assert sum(map(len, from_torch)) > 50
    assert [spans(d) for d in from_onnx] == [spans(d) for d in from_torch]
    assert np.allclose([e.score for d in from_onnx for e in d], [e.score for d in from_torch for e in d], atol=1.5e-4)


def test_batch_threads_are_split_between_lac_and_the_network_only_for_a_model_with_lac(tiny_model, tmp_path):
    import torch

    from policy_ner.features import lexicon
    from policy_ner.model.registry import MODEL_SETTINGS_FILE

    before = torch.get_num_threads(), lexicon._lac_threads
    try:
        assert set_batch_threads(tiny_model, 4) == 2 and torch.get_num_threads() == 2 and lexicon._lac_threads == 2
        assert set_batch_threads(tiny_model, 3) == 2 and lexicon._lac_threads == 1
        assert set_batch_threads(tiny_model, 4, overlap=False) == 4 and lexicon._lac_threads == 4
        settings = json.loads((tiny_model / MODEL_SETTINGS_FILE).read_text(encoding="utf-8"))
        settings["features"]["channels"] = ["jieba", "money"]
        (tmp_path / MODEL_SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")
        assert set_batch_threads(tmp_path, 4) == 4 and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before[0])
        lexicon.set_lac_threads(before[1])
