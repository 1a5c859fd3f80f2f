"""Cross-validation by source document: groups from the manifest stay in one fold, leave-one-genre-out,
and `policy-ner cv` reading both from the manifest the config names."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import LABELS, ROOT
from policy_ner.cli import main
from policy_ner.corpus import MANIFEST_COLUMNS, document_groups, read_manifest
from policy_ner.evaluate.cv import assign_folds, genre_folds
from policy_ner.types import Document

MANIFEST = ROOT / "data" / "manifest.csv"


def documents(sizes: dict[str, int]) -> list[Document]:
    # distinct texts (identical ones would be grouped together): the doc id, then filler to the size
    return [Document(doc_id, (doc_id + "字" * size)[:size], ()) for doc_id, size in sizes.items()]


SIZES = {
    "a_p1": 900,
    "a_p2": 850,
    "a_p3": 300,
    "b_p1": 700,
    "b_p2": 650,
    "c": 1200,
    "d": 400,
    "e": 380,
    "f_p1": 200,
    "f_p2": 210,
    "g": 90,
}
GROUPS = {"a_p1": "a", "a_p2": "a", "a_p3": "a", "b_p1": "b", "b_p2": "b", "f_p1": "f", "f_p2": "f"}


def fold_of(folds) -> dict[str, int]:
    return {d.doc_id: f.index for f in folds for d in f.test}


def test_every_group_stays_in_one_fold_and_the_folds_stay_balanced():
    docs = documents(SIZES)
    folds = assign_folds(docs, 3, groups=GROUPS)
    where = fold_of(folds)
    assert sorted(where) == sorted(SIZES)
    for group in set(GROUPS.values()):
        assert len({where[d] for d, g in GROUPS.items() if g == group}) == 1
    for fold in folds:
        assert not {d.doc_id for d in fold.train} & {d.doc_id for d in fold.test}
        assert len(fold.train) + len(fold.test) == len(docs)
    sizes = sorted(sum(len(d.text) for d in f.test) for f in folds)
    assert sizes[-1] - sizes[0] <= 2050  # never worse than the largest group (a: 2,050 characters)
    assert fold_of(assign_folds(list(reversed(docs)), 3, groups=GROUPS)) == where


def test_without_groups_each_document_is_its_own_group_as_before():
    docs = documents(SIZES)
    single = {d.doc_id: d.doc_id for d in docs}
    assert fold_of(assign_folds(docs, 4)) == fold_of(assign_folds(docs, 4, groups=single))
    # A document the mapping does not name is a group of its own.
    partial = {k: v for k, v in GROUPS.items() if not k.startswith("b")}
    where = fold_of(assign_folds(docs, 3, groups=partial))
    assert len({where["a_p1"], where["a_p2"], where["a_p3"]}) == 1
    with pytest.raises(ValueError, match=r"between 2 and the number of groups \(3\)"):
        assign_folds(
            documents({"x1": 10, "x2": 10, "y": 5, "z": 5}), 4, groups={"x1": "x", "x2": "x", "y": "y", "z": "z"}
        )


def test_leave_one_genre_out_holds_out_each_genre_and_always_trains_on_the_rest():
    docs = documents(SIZES)
    genres = {
        "a_p1": "policy",
        "a_p2": "policy",
        "a_p3": "policy",
        "c": "news",
        "d": "work_report",
        "e": "work_report",
        "b_p1": "policy",
    }
    folds = genre_folds(docs, genres)
    assert [f.name for f in folds] == ["news", "policy", "work_report"]
    assert [[d.doc_id for d in f.test] for f in folds] == [["c"], ["a_p1", "a_p2", "a_p3", "b_p1"], ["d", "e"]]
    unlabelled = {"b_p2", "f_p1", "f_p2", "g"}
    for fold in folds:
        assert unlabelled <= {d.doc_id for d in fold.train}
        assert {d.doc_id for d in fold.train} == set(SIZES) - {d.doc_id for d in fold.test}
    with pytest.raises(ValueError, match="at least 2 genres"):
        genre_folds(docs, {"c": "news"})


def test_the_manifest_groups_chunks_of_one_source_document():
    entries = {e.doc_id: e for e in read_manifest(MANIFEST)}
    group = {d: e.group for d, e in entries.items()}
    assert {
        group[d] for d in ("001_ns_tech_p1", "002_ns_tech_p2", "003_ns_tech_p3", "004_ns_tech_p4", "005_ns_tech_p5")
    } == {"ns_tech"}
    assert {group["006_ns_hq_p1"], group["007_ns_hq_p2"]} == {"ns_hq"}
    assert {group[d] for d in ("010_ns_hq_rules_p2", "011_ns_hq_rules_p5", "012_ns_hq_rules_p6")} == {"ns_hq_rules"}
    assert group["017_gwr_fujian_mintai5y"] == group["021_gwr_fujian"] == "gwr_fujian"  # one report, two excerpts
    assert group["000_b8684210232e5550"] != group["004_6ef2b3c195398a72"]
    assert len(set(group.values())) == 19
    genres = {d: e.genre for d, e in entries.items()}
    assert {genres[d] for d in group if group[d].startswith("ns_")} == {"policy"}
    assert {genres[d] for d in group if group[d].startswith("gwr_")} == {"work_report"}
    assert genres["000_b8684210232e5550"] == genres["004_6ef2b3c195398a72"] == "news"

    # The script derives the same groups from data/raw/corpus/SOURCES.md.
    spec = importlib.util.spec_from_file_location("build_manifest", ROOT / "scripts" / "build_manifest.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    derived = script.corpus_groups(sorted((ROOT / "data" / "raw" / "corpus").glob("*.txt")), script.CORPUS_SOURCES)
    assert derived == {d: (e.group, e.genre) for d, e in entries.items() if e.file.startswith("raw/corpus/")}


def test_manifest_errors_name_the_file_and_line(tmp_path):
    rows = list(csv.DictReader(MANIFEST.open(encoding="utf-8")))
    old = tmp_path / "old.csv"
    old.write_text("doc_id,file,source,licence,sha256,chars\nx,raw/x.txt,s,l,0,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"old.csv: manifest lacks the column\(s\) group, genre"):
        read_manifest(old)
    broken = tmp_path / "broken.csv"
    with broken.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows([rows[0], {**rows[1], "group": ""}])
    with pytest.raises(ValueError, match=r"broken.csv:3: empty doc_id or group"):
        read_manifest(broken)


def write_config(tmp_path: Path, manifest: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    config["data"]["manifest"] = str(manifest)
    path = tmp_path / "grouped.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_cv_command_folds_by_group_by_default_and_says_which_documents_the_manifest_lacks(tmp_path, capsys):
    rows = list(csv.DictReader(MANIFEST.open(encoding="utf-8")))
    partial = tmp_path / "manifest.csv"
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["doc_id"] not in ("018_gwr_guangxi", "035_gwr_yunnan"))
    config = write_config(tmp_path, partial)
    out = tmp_path / "grouped"
    assert (
        main(["cv", str(config), "--no-model", "--baselines", "wordlist", "--root", str(ROOT), "--output", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 document(s) not in" in printed and "018_gwr_guangxi, 035_gwr_yunnan" in printed
    result = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert result["grouping"]["by"] == "group" and result["grouping"]["not_in_manifest"] == [
        "018_gwr_guangxi",
        "035_gwr_yunnan",
    ]
    groups, _ = document_groups(partial)
    fold_of_group: dict[str, set[int]] = {}
    for fold in result["folds"]:
        for doc_id in fold["test_documents"]:
            fold_of_group.setdefault(groups.get(doc_id, doc_id), set()).add(fold["index"])
    assert all(len(folds) == 1 for folds in fold_of_group.values()) and len(fold_of_group) == 19
    table = (out / "cv.md").read_text(encoding="utf-8")
    assert "by source document" in table and "ns_tech (001_ns_tech_p1, 002_ns_tech_p2" in table

    ungrouped = tmp_path / "by-doc"
    assert (
        main(
            [
                "cv",
                str(config),
                "--no-model",
                "--baselines",
                "wordlist",
                "--group-by",
                "doc",
                "--root",
                str(ROOT),
                "--output",
                str(ungrouped),
            ]
        )
        == 0
    )
    by_doc = json.loads((ungrouped / "cv.json").read_text(encoding="utf-8"))
    assert by_doc["grouping"] == {"by": "doc"}
    committed = json.loads((ROOT / "eval" / "cv-default-by-doc" / "cv.json").read_text(encoding="utf-8"))
    # the ungrouped folds of the committed table (made before groups existed), reproduced exactly
    assert [f["test_documents"] for f in by_doc["folds"]] == [f["test_documents"] for f in committed["folds"]]


def test_cv_command_leave_one_genre_out_writes_its_own_table(tmp_path, capsys):
    out = tmp_path / "genre"
    assert (
        main(
            [
                "cv",
                str(write_config(tmp_path, MANIFEST)),
                "--no-model",
                "--baselines",
                "wordlist",
                "--leave-out",
                "genre",
                "--root",
                str(ROOT),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in result["folds"]] == ["news", "policy", "work_report"]
    assert [len(f["test_documents"]) for f in result["folds"]] == [2, 10, 15]
    table = (out / "cv.md").read_text(encoding="utf-8")
    assert "# Leave-one-genre-out" in table
    assert "| system | news (2 docs" in table and "| wordlist | work_report |" in table
    row = next(line for line in table.splitlines() if re.match(r"\| wordlist \| \d", line))
    assert len(row.split("|")) == 7  # system, three genres, mean
    assert set(LABELS) <= set(table.split())
    assert "never tested" not in capsys.readouterr().out


def test_without_a_manifest_documents_are_their_own_groups_and_genres_cannot_be_left_out(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "absent.csv")
    out = tmp_path / "cv"
    assert (
        main(["cv", str(config), "--no-model", "--baselines", "wordlist", "--root", str(ROOT), "--output", str(out)])
        == 0
    )
    assert "absent.csv not found: each document is a group of its own" in capsys.readouterr().out
    assert "was not found, so each document is a group of its own" in (out / "cv.md").read_text(encoding="utf-8")
    assert (
        main(
            [
                "cv",
                str(config),
                "--no-model",
                "--baselines",
                "wordlist",
                "--leave-out",
                "genre",
                "--root",
                str(ROOT),
                "--output",
                str(tmp_path / "genre"),
            ]
        )
        == 1
    )
    assert "leave-one-genre-out needs its genre column" in capsys.readouterr().err
