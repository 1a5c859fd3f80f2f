"""Cases from the hostile-input audit (issue 16): each failed before its fix."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat

import pytest

from policy_ner.files import atomic_directory, atomic_write_json, atomic_write_text
from policy_ner.model.registry import check_version, reserved_version


def test_written_files_and_model_folders_get_the_umasks_modes(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "v1") as scratch:
            (scratch / "weights.bin").write_bytes(b"x")
            os.chmod(scratch / "weights.bin", 0o600)  # as a library might leave it
            atomic_write_text(scratch / "card.json", "{}")
        assert stat.S_IMODE((tmp_path / "v1").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "v1" / "card.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "v1" / "weights.bin").stat().st_mode) == 0o644
        assert stat.S_IMODE(atomic_write_text(tmp_path / "report.md", "x").stat().st_mode) == 0o644
    finally:
        os.umask(previous)


@pytest.mark.parametrize("version", ["../../x", "/abs/path", "a/b", "..", "", ".hidden", "v1\n"])
def test_a_version_name_must_be_one_folder_name(version):
    with pytest.raises(ValueError, match="not a valid version name"):
        check_version(version, "policy_ner.json: version")


def test_evaluate_refuses_a_model_whose_version_would_leave_eval(
    tiny_model, tiny_project, tmp_path, capsys, monkeypatch
):
    import shutil

    from policy_ner.cli import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    settings = json.loads((model / "policy_ner.json").read_text(encoding="utf-8"))
    (model / "policy_ner.json").write_text(json.dumps({**settings, "version": "../../escaped"}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(model), str(tiny_project / "annotations" / "tiny.json"), "--samples", "20"]) == 1
    assert "'../../escaped' is not a valid version name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "eval").exists()


def test_two_runs_started_in_the_same_second_reserve_two_version_names(tmp_path):
    models, runs = tmp_path / "models", tmp_path / "training"
    with (
        reserved_version([models, runs], None, "20261201-120000-default") as first,
        reserved_version([models, runs], None, "20261201-120000-default") as second,
    ):
        assert (first, second) == ("20261201-120000-default", "20261201-120000-default-2")
        with (
            pytest.raises(FileExistsError, match="being written by another run"),
            reserved_version([models, runs], "20261201-120000-default", "unused"),
        ):
            pass
    assert not list(models.glob(".*.reserved"))  # released
    (runs / "taken").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="taken already exists"), reserved_version([models, runs], "taken", "x"):
        pass


def test_a_carriage_return_in_a_doc_id_is_quoted_in_csv(tiny_model, tmp_path):
    from policy_ner.model.predictor import Predictor
    from policy_ner.predict.batch import predict_files

    predictor = Predictor.from_pretrained(tiny_model)
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"doc_id": "a\rb", "text": "对台资企业给予最高300万元补贴。"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    summary = predict_files(predictor, [source], tmp_path / "out.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_bytes().decode("utf-8-sig"), newline="")))
    assert summary.documents == 1 and len(rows) == max(summary.entities, 1)
    assert {row["doc_id"] for row in rows} == {"a\rb"}


# --- cases 2 and 6: an output that is an input; which model wrote a file -------------------------

TWO_DOCUMENTS = [
    {"doc_id": "a", "text": "对台资企业给予最高300万元补贴。"},
    {"doc_id": "b", "text": "区委台办为台胞提供服务。"},
]


def _jsonl(path, records) -> bytes:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path.read_bytes()


def _predict(capsys, *argv) -> tuple[int, str]:
    from policy_ner.cli import main

    code = main(["predict", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("link", ["same path", "symlink", "hard link"])
def test_an_output_that_is_one_of_the_inputs_is_refused_and_the_input_kept(tiny_model, tmp_path, capsys, link):
    source = tmp_path / "same.jsonl"
    kept = _jsonl(source, TWO_DOCUMENTS)
    output = {"same path": source, "symlink": tmp_path / "link.jsonl", "hard link": tmp_path / "hard.jsonl"}[link]
    if link == "symlink":
        output.symlink_to(source)
    elif link == "hard link":
        os.link(source, output)
    code, err = _predict(capsys, tiny_model, source, "--output", output, "--resume")
    assert code == 1 and f"{output}: the output is also an input ({source})" in err
    assert source.read_bytes() == kept


def test_an_output_inside_an_input_folder_that_its_glob_reads_is_refused(tiny_model, tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(TWO_DOCUMENTS[0]["text"], encoding="utf-8")
    output = folder / "predictions.jsonl"
    assert _predict(capsys, tiny_model, folder, "--output", output)[0] == 0
    kept = output.read_bytes()
    code, err = _predict(capsys, tiny_model, folder, "--glob", "*", "--output", output, "--resume")
    assert code == 1 and "the output is also an input" in err and output.read_bytes() == kept


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_every_output_names_the_model_version_and_resume_refuses_another(tiny_model, tmp_path, capsys, suffix):
    from policy_ner.model.predictor import Predictor
    from policy_ner.predict.outputs import OtherModelVersion

    source = tmp_path / "in.jsonl"
    _jsonl(source, TWO_DOCUMENTS)
    output = tmp_path / f"out{suffix}"
    assert _predict(capsys, tiny_model, source, "--output", output)[0] == 0
    text = output.read_bytes().decode("utf-8-sig")
    if suffix == ".jsonl":
        versions = {json.loads(line)["model_version"] for line in text.splitlines()}
    elif suffix == ".csv":
        versions = {row["model_version"] for row in csv.DictReader(io.StringIO(text, newline=""))}
    else:
        versions = {p["model_version"] for task in json.loads(text) for p in task["predictions"]}
    assert versions == {"tiny-v1"}

    # The same file resumed by another model: refused, the file as it was.
    _jsonl(source, [*TWO_DOCUMENTS, {"doc_id": "c", "text": "高校毕业生可申请补贴。"}])
    kept = output.read_bytes()
    code, err = _predict(capsys, tiny_model, source, "--output", output, "--resume")
    assert code == 0 and output.read_bytes() != kept  # same model: resumed
    kept = output.read_bytes()
    other = Predictor.from_pretrained(tiny_model)
    other.version = "tiny-v2"
    from policy_ner.predict.batch import predict_files

    with pytest.raises(OtherModelVersion, match=r"holds predictions of model version tiny-v1, not of tiny-v2"):
        predict_files(other, [source], output, resume=True)
    assert output.read_bytes() == kept


def test_resume_refuses_a_file_whose_records_name_no_model_version(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    _jsonl(source, TWO_DOCUMENTS)
    output = tmp_path / "old.jsonl"
    kept = _jsonl(output, [{**TWO_DOCUMENTS[0], "entities": []}])  # as written before versions were recorded
    code, err = _predict(capsys, tiny_model, source, "--output", output, "--resume")
    assert code == 1 and "holds predictions of model version (none recorded), not of tiny-v1" in err
    assert output.read_bytes() == kept


# --- case 3: training on nothing ----------------------------------------------------------------


def _project_with_export(tmp_path, export) -> tuple:
    import yaml

    from conftest import TINY_CONFIG, write_json

    write_json(tmp_path / "annotations" / "bad.json", export)
    config = {**TINY_CONFIG, "data": {**TINY_CONFIG["data"], "dev_documents": []}}
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "tiny.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return tmp_path / "configs" / "tiny.yaml", tmp_path


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ([], "no annotated documents in .*bad.json: nothing to train on"),
        ({"tasks": []}, "expected a JSON list of tasks .*found an object with keys 'tasks'"),
        ("one", "expected a JSON list of tasks .*found str"),
        ("single", "no training documents: all 1 annotated document.*in dev"),
    ],
)
def test_training_on_nothing_is_refused_before_any_version_is_written(tmp_path, capsys, export, message):
    from conftest import TINY_DEV_DOC, corpus_tasks
    from policy_ner.cli import main

    if export == "single":
        export = [t for t in corpus_tasks() if t["data"]["doc_id"] == TINY_DEV_DOC]
    config, root = _project_with_export(tmp_path, export)
    assert main(["train", str(config), "--root", str(root)]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (root / "models").exists() or not any((root / "models").iterdir())


def test_json_files_are_never_written_with_nan(tmp_path):
    with pytest.raises(ValueError, match=r"card.json: not written, Out of range float values"):
        atomic_write_json(tmp_path / "card.json", {"final_loss": float("nan")})
    assert not (tmp_path / "card.json").exists()


def test_a_loss_that_turns_nan_stops_training(tiny_project):
    from conftest import TINY_CONFIG
    from policy_ner.config import config_from_dict
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.encoding import IGNORE_INDEX
    from policy_ner.model.network import build_char_vocab, char_tokenizer, new_model
    from policy_ner.train.dataset import training_examples
    from policy_ner.train.loop import TrainingDiverged, fit

    config = config_from_dict({**TINY_CONFIG, "model": {**TINY_CONFIG["model"], "features": [], "crf": False}})
    docs = load_documents([tiny_project / "annotations" / "tiny.json"], config.labels)[:1]
    tokenizer = char_tokenizer(build_char_vocab([d.text for d in docs]))
    model = new_model(config, tokenizer, config.window.max_length, {}, {})

    def nothing_to_score(inputs, labels):  # every position ignored: cross-entropy of no targets is NaN
        return inputs, labels.fill_(IGNORE_INDEX)

    with pytest.raises(TrainingDiverged, match="training loss is nan in epoch 1"):
        fit(model, training_examples(docs, tokenizer, config.tags), tokenizer, config, prepare_batch=nothing_to_score)


# --- case 4: duplicate texts, reused task ids, malformed annotations ------------------------------


def test_identical_texts_stay_in_one_split_and_are_reported(tmp_path):
    from conftest import corpus_tasks
    from policy_ner.config import DataConfig
    from policy_ner.labelstudio.exports import read_exports
    from policy_ner.train.run import split_documents

    tasks = corpus_tasks()
    copies = [
        {
            **task,
            "id": 10_000 * copy + index,
            "data": {**task["data"], "doc_id": f"{task['data']['doc_id']}-copy{copy}"},
        }
        for copy in range(3)
        for index, task in enumerate(tasks)
    ]
    from conftest import write_json

    reading = read_exports([write_json(tmp_path / "copies.json", copies)], ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"])
    assert len(reading.identical_texts) == len(tasks) and all(len(ids) == 3 for ids in reading.identical_texts)
    split = split_documents(reading.documents, DataConfig(dev_fraction=0.2))
    train_texts, dev_texts = {d.text for d in split.train}, {d.text for d in split.dev}
    assert dev_texts and train_texts and not train_texts & dev_texts
    assert len(split.dev) % 3 == 0


def test_identical_texts_stay_in_one_cross_validation_fold():
    from policy_ner.evaluate.cv import assign_folds
    from policy_ner.types import Document

    docs = [Document(f"d{i}", f"文本{i % 4}" * (i + 1) if i >= 4 else f"文本{i}") for i in range(8)]
    docs += [Document("twin-of-d1", docs[1].text)]
    for fold in assign_folds(docs, 3):
        test_ids = {d.doc_id for d in fold.test}
        assert ("d1" in test_ids) == ("twin-of-d1" in test_ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: {**t, "annotations": {"result": t["annotations"][0]["result"]}}, "annotations must be a list"),
        (lambda t: {**t, "annotations": [{**t["annotations"][0], "result": ["ORG 0:3"]}]}, "result #0 is a str"),
        (lambda t: {**t, "annotations": [{**t["annotations"][0], "result": {"a": 1}}]}, "result must be a list"),
    ],
)
def test_malformed_annotations_are_issues_naming_the_task(tmp_path, change, message):
    from conftest import corpus_tasks, write_json
    from policy_ner.labelstudio.exports import read_exports

    task = corpus_tasks()[0]
    reading = read_exports(
        [write_json(tmp_path / "e.json", [change(task)])], ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"]
    )
    with pytest.raises(ValueError, match="1 annotation problem"):
        reading.raise_for_issues()
    assert f"task {task['id']} (doc {task['data']['doc_id']})" in str(reading.issues[0])
    assert message in str(reading.issues[0])


def test_one_task_id_with_two_doc_ids_in_one_file_is_an_issue(tmp_path):
    from conftest import corpus_tasks, write_json
    from policy_ner.labelstudio.exports import read_exports

    first, second = corpus_tasks()[:2]
    reading = read_exports(
        [write_json(tmp_path / "e.json", [first, {**second, "id": first["id"]}])],
        ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"],
    )
    assert len(reading.issues) == 1
    assert f"task id also used for doc {first['data']['doc_id']}" in str(reading.issues[0])


# --- case 10: a GBK export ----------------------------------------------------------------------


def test_an_export_in_another_encoding_is_named_as_not_utf8_with_the_encoding_it_looks_like(tmp_path):
    from conftest import corpus_tasks
    from policy_ner.labelstudio.exports import read_exports

    export = tmp_path / "gbk.json"
    export.write_bytes(json.dumps(corpus_tasks()[:3], ensure_ascii=False).encode("gbk"))
    (issue,) = read_exports([export], ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"]).issues
    assert str(issue).startswith(f"{export}: task - (doc -): not UTF-8 (byte 0x")
    assert "it looks like GB18030: Label Studio exports are UTF-8" in str(issue)
    assert "iconv -f gb18030 -t UTF-8" in str(issue) and "not a JSON file" not in str(issue)


# --- case 7: damaged model folders ---------------------------------------------------------------


def _damaged_copy(tiny_model, tmp_path, damage, keep_checksums: bool = True):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    if not keep_checksums:  # as a model trained before the card listed its files
        card = json.loads((model / "model_card.json").read_text(encoding="utf-8"))
        del card["files"]
        (model / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    damage(model)
    return model


def _random_bytes_inside(model):
    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-4096:-2048] = os.urandom(2048)  # inside the tensors: the header still parses
    (model / "model.safetensors").write_bytes(bytes(weights))


def _truncate(model):
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _bad_header(model):
    weights = model / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])


def _no_tokenizer(model):
    (model / "tokenizer.json").unlink()


@pytest.mark.parametrize(
    ("damage", "keep_checksums", "message"),
    [
        (_random_bytes_inside, True, r"model.safetensors: sha256 \w+… differs from the model card's \w+… \(corrupted"),
        (_truncate, True, r"model.safetensors: \d+ bytes where the model card records \d+ \(truncated or replaced\)"),
        (_no_tokenizer, True, r"tokenizer.json: missing, but the model card lists it"),
        (_bad_header, False, r"model: the weights cannot be read \("),
        (_truncate, False, r"model: the weights cannot be read \("),
        (_no_tokenizer, False, r"model: no tokenizer \(tokenizer.json or vocab.txt\); the model folder is incomplete"),
    ],
)
def test_a_damaged_model_folder_is_a_clear_error_naming_the_file(
    tiny_model, tmp_path, capsys, damage, keep_checksums, message
):
    from policy_ner.cli import main

    model = _damaged_copy(tiny_model, tmp_path, damage, keep_checksums)
    source = tmp_path / "in.txt"
    source.write_text("对台资企业给予最高300万元补贴。", encoding="utf-8")
    code = main(["predict", str(model), str(source), "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and re.search(message, err), err
    assert "Traceback" not in err and str(model) in err
    assert not (tmp_path / "out.jsonl").exists()


def test_an_intact_model_folder_matches_its_card(tiny_model):
    from policy_ner.model.registry import verify_model_files

    card = json.loads((tiny_model / "model_card.json").read_text(encoding="utf-8"))
    assert {"model.safetensors", "tokenizer.json", "policy_ner.json", "config.json"} <= set(card["files"])
    verify_model_files(tiny_model)


# --- case 8: predictions without gold -------------------------------------------------------------


def test_predictions_for_documents_without_gold_are_reported_not_dropped(
    tiny_predictions, tiny_project, tmp_path, capsys
):
    from policy_ner.cli import main

    extra = {"doc_id": "not-annotated", "text": "对台资企业给予补贴。", "entities": []}
    predictions = tmp_path / "more.jsonl"
    predictions.write_text(
        tiny_predictions.read_text(encoding="utf-8") + json.dumps(extra, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    gold = str(tiny_project / "annotations" / "tiny.json")
    config = str(tiny_project / "configs" / "tiny.yaml")
    out_dir = tmp_path / "report"
    code = main(["evaluate", str(predictions), gold, "--config", config, "--output", str(out_dir), "--samples", "20"])
    assert code == 0
    warning = "more: 1 prediction(s) without a gold document, not scored (not-annotated)"
    assert f"warning: {warning}" in capsys.readouterr().err
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert report["context"]["predictions_without_gold"] == {"more": ["not-annotated"]}
    assert warning in (out_dir / "report.md").read_text(encoding="utf-8")

    code = main(
        [
            "compare",
            str(tiny_predictions),
            str(predictions),
            "--on",
            gold,
            "--config",
            config,
            "--output",
            str(tmp_path / "cmp"),
            "--samples",
            "20",
        ]
    )
    assert code == 0 and f"warning: {warning}" in capsys.readouterr().err


# --- case 14: jieba's cache -------------------------------------------------------------------------


def test_jieba_keeps_its_dictionary_cache_in_the_users_private_cache_folder(tmp_path, monkeypatch):
    import tempfile

    from policy_ner.features import lexicon

    monkeypatch.setenv("POLICY_NER_CACHE", str(tmp_path / "cache"))
    lexicon._jieba.cache_clear()
    shared = os.path.join(tempfile.gettempdir(), "jieba.cache")
    shared_before = os.stat(shared).st_mtime_ns if os.path.exists(shared) else None
    try:
        assert lexicon.word_boundaries("台资企业") == [lexicon.BEGIN, lexicon.END] * 2  # 台资|企业
        folder = tmp_path / "cache" / "jieba"
        assert (folder / "jieba.cache").is_file()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert (os.stat(shared).st_mtime_ns if os.path.exists(shared) else None) == shared_before
    finally:
        lexicon._jieba.cache_clear()


# --- case 15: what a killed run leaves ----------------------------------------------------------------

_KILLED_WHILE_SAVING = """
import sys, time
from pathlib import Path
from policy_ner.files import atomic_directory
from policy_ner.model.registry import reserved_version

models = Path(sys.argv[1])
with reserved_version([models], "v1", "unused"), atomic_directory(models / "v1") as scratch:
    (scratch / "model.safetensors").write_bytes(b"half")
    print("saving", flush=True)
    time.sleep(600)
"""


def test_a_run_killed_while_saving_leaves_nothing_that_is_not_reported_and_cleaned(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    from policy_ner.cli import main
    from policy_ner.files import partial_folders, remove_stale_partials

    models = tmp_path / "models"
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WHILE_SAVING, str(models)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline() == "saving\n"
        (running,) = partial_folders(models)
        assert not running.stale and running.owner.endswith(f"-{writer.pid}")
        assert remove_stale_partials(models) == [] and running.path.is_dir()  # a live writer's folder stays
        with (
            pytest.raises(FileExistsError, match="being written by another run"),
            reserved_version([models], "v1", "x"),
        ):
            pass
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()

    (left,) = partial_folders(models)
    assert left.stale and not (models / "v1").exists()
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    assert f"note: {left.path} was left by a killed run (process {left.owner}); the next train removes it" in (
        capsys.readouterr().err
    )
    with reserved_version([models], "v1", "unused") as name:  # the killed run's reservation is taken over
        assert name == "v1"
    assert remove_stale_partials(models) == [left] and not left.path.exists()
    assert partial_folders(models) == []
