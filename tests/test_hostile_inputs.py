"""Cases from the hostile-input audit (issue 16): each failed before its fix."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from policy_ner.files import atomic_directory, atomic_write_text
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
