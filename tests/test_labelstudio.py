"""The Label Studio round trip against a real server (label-studio 1.23.2 on 127.0.0.1, see
`labelstudio_fixture.py`): push with pre-annotations, annotate through the API as an annotator would,
pull, validate, diff, retrain from the pulled file and push the new model's pre-annotations.

The pure parts (diff, versions, push planning, uncertainty, server environment) are tested first,
without a server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from label_studio_sdk import LabelStudio

from conftest import LABELS, TINY_CONFIG
from labelstudio_fixture import TEMPLATE, VENV
from policy_ner.cli import main
from policy_ner.files import sha256_file
from policy_ner.labelstudio.exports import load_documents
from policy_ner.labelstudio.formats import document_results, labeling_config, labels_tags, span_result
from policy_ner.labelstudio.server import (
    LABEL_STUDIO_VERSION,
    LabelStudioServerError,
    executable,
    free_port,
    server_environment,
)
from policy_ner.labelstudio.sync import (
    API_KEY_ENV,
    DocumentChange,
    ExistingTask,
    LabelStudioError,
    PushConflict,
    connect,
    diff_documents,
    import_order,
    plan_push,
    previous_version,
    redact,
)
from policy_ner.model.predictor import Predictor, tag_margin_uncertainty
from policy_ner.types import Document, Span

# --- without a server ----------------------------------------------------------------------------------

TEXT = "对台资企业给予最高300万元补贴。"


def doc(doc_id: str, *spans: Span, text: str = TEXT) -> Document:
    return Document(doc_id, text, tuple(spans), source=f"{doc_id}.txt")


def test_diff_names_new_changed_removed_documents_and_spans():
    target, amount = Span(1, 5, "POLICY_TARGET"), Span(9, 14, "SUBSIDY_AMOUNT")
    previous = [doc("a", target, amount), doc("b", target), doc("gone", amount), doc("same", target)]
    current = [
        doc("a", Span(1, 5, "ORG")),
        doc("b", target, amount),
        doc("same", target),
        doc("fresh", amount),
        doc("retexted", target, text=TEXT + "。"),
    ]
    previous.append(doc("retexted", target))
    diff = diff_documents(previous, current)
    assert [d.doc_id for d in diff.new] == ["fresh"] and [d.doc_id for d in diff.removed] == ["gone"]
    assert diff.changed == (
        DocumentChange("a", (), (amount,), ((target, Span(1, 5, "ORG")),)),
        DocumentChange("b", (amount,), (), ()),
        DocumentChange("retexted", (target,), (target,), (), text_changed=True),
    )
    assert diff.unchanged == 1
    assert (diff.spans_added, diff.spans_removed, diff.spans_relabelled) == (1 + 1 + 1, 1 + 1 + 1, 1)


def test_previous_version_is_the_highest_lower_version_beside_the_output(tmp_path):
    for name in [
        "corpus-v1.json",
        "corpus-v2.json",
        "corpus-v10.json",
        "corpus-v12.json",
        "other-v3.json",
        "corpus-extra-v9.json",
    ]:
        (tmp_path / name).write_text("[]")
    assert previous_version(tmp_path / "corpus-v11.json") == tmp_path / "corpus-v10.json"
    assert previous_version(tmp_path / "corpus-v2.json") == tmp_path / "corpus-v1.json"  # pulling v2 again
    assert previous_version(tmp_path / "corpus-v1.json") is None
    assert previous_version(tmp_path / "other-v1.json") is None
    assert previous_version(tmp_path / "corpus.json") is None


def test_push_plan_skips_present_documents_and_refuses_changed_texts():
    existing = {"a": ExistingTask(7, TEXT, frozenset({"m1"})), "b": ExistingTask(8, TEXT, frozenset())}
    plan = plan_push([doc("a"), doc("b"), doc("c")], existing, "m1")
    assert [d.doc_id for d in plan.new] == ["c"] and [d.doc_id for d in plan.present] == ["a", "b"]
    assert [d.doc_id for d in plan.needs_prediction] == ["b"]
    with pytest.raises(PushConflict) as caught:
        plan_push(
            [doc("a", text=TEXT[:5] + "外资" + TEXT[7:]), doc("c"), doc("c"), doc("e", text=" \n")], existing, None
        )
    message = str(caught.value)
    assert "a.txt: doc id a is task 7 in the project with another text (they differ from character 5" in message
    assert "c.txt: doc id c also comes from c.txt" in message and "e.txt: doc e has no text" in message
    assert "nothing imported" in message


def test_import_order_puts_the_least_certain_first_and_keeps_ties_in_input_order():
    docs = [doc("a"), doc("b"), doc("c"), doc("d")]
    uncertainty = {"a": 0.1, "b": 0.3, "c": 0.1, "d": 0.2}
    assert [d.doc_id for d in import_order(docs, uncertainty, "uncertainty")] == ["b", "d", "a", "c"]
    assert [d.doc_id for d in import_order(docs, uncertainty, "input")] == ["a", "b", "c", "d"]


def test_tag_margin_uncertainty_is_zero_when_sure_and_one_when_torn():
    sure = np.array([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    torn = np.array([[3.0, 3.0, -30.0], [-30.0, 1.0, 1.0]])
    assert tag_margin_uncertainty(sure) == pytest.approx(0.0, abs=1e-6)
    assert tag_margin_uncertainty(torn) == pytest.approx(1.0, abs=1e-6)
    assert tag_margin_uncertainty(np.vstack([sure, torn])) == pytest.approx(0.5, abs=1e-6)
    assert tag_margin_uncertainty(np.zeros((0, 3))) == 0.0


def test_server_environment_keeps_the_server_local_and_ignores_bare_settings(tmp_path):
    base = {
        "PATH": "/usr/bin",
        "USERNAME": "someone",
        "PORT": "9999",
        "HOST": "http://example.com",
        "HEARTEX_DEBUG": "true",
        "LABEL_STUDIO_DATABASE_NAME": "/elsewhere.sqlite3",
        "DJANGO_DB": "postgresql",
        "LABEL_STUDIO_USERNAME": "me@example.com",
        "LABEL_STUDIO_PASSWORD": "pw",
    }
    env = server_environment(tmp_path / "data", base=base)
    assert env["PATH"] == "/usr/bin" and env["LABEL_STUDIO_BASE_DATA_DIR"] == str((tmp_path / "data").resolve())
    assert not {"USERNAME", "PORT", "HOST", "HEARTEX_DEBUG", "LABEL_STUDIO_DATABASE_NAME", "DJANGO_DB"} & set(env)
    assert env["LABEL_STUDIO_USERNAME"] == "me@example.com"  # a user's own first account passes through
    assert env["LABEL_STUDIO_SENTRY_DSN"] == env["LABEL_STUDIO_FRONTEND_SENTRY_DSN"] == ""
    assert env["LABEL_STUDIO_LATEST_VERSION_CHECK"] == env["LABEL_STUDIO_COLLECT_ANALYTICS"] == "false"
    assert env["LABEL_STUDIO_DJANGO_DB"] == "sqlite" and env["LABEL_STUDIO_DEBUG"] == "false"


def test_a_missing_or_other_label_studio_install_is_an_error_saying_how_to_fix_it(tmp_path):
    venv = tmp_path / "venv"
    with pytest.raises(
        LabelStudioServerError, match=f"Label Studio is not installed in {venv}: run `make labelstudio-install`"
    ):
        executable(venv)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "label-studio").touch()
    (venv / "lib" / "python3.11" / "site-packages" / "label_studio-1.22.0.dist-info").mkdir(parents=True)
    with pytest.raises(
        LabelStudioServerError, match=f"holds label-studio 1.22.0, not the pinned {LABEL_STUDIO_VERSION}"
    ):
        executable(venv)


def test_labels_tags_reads_the_generated_config_back():
    (tag,) = labels_tags(labeling_config(LABELS))
    assert (tag.from_name, tag.to_name, tag.labels) == ("label", "text", tuple(LABELS))


def test_the_pinned_label_studio_version_is_the_same_everywhere():
    root = Path(__file__).resolve().parent.parent
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    lock = (root / "requirements-labelstudio.lock").read_text(encoding="utf-8").splitlines()
    assert f"LS_VERSION := {LABEL_STUDIO_VERSION}" in makefile
    assert f"label-studio=={LABEL_STUDIO_VERSION}" in lock
    sdk = next(
        line for line in (root / "requirements.lock").read_text().splitlines() if line.startswith("label-studio-sdk==")
    )
    assert sdk in lock  # the server's SDK is the one we talk to it with


def test_a_missing_api_key_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    code = main(
        ["ls", "pull", "--url", "http://127.0.0.1:9", "--project", "x", "--output", str(tmp_path / "x-v1.json")]
    )
    assert code == 1
    assert f"no Label Studio API key: set {API_KEY_ENV} (or pass --api-key)" in capsys.readouterr().err


def test_redact_hides_the_key():
    assert redact("Token abc123 refused", "abc123") == "Token *** refused"


# --- against the real server -----------------------------------------------------------------------


@pytest.fixture
def ls(label_studio, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, label_studio.api_key)
    return label_studio


@pytest.fixture(scope="module")
def gold(tiny_project) -> dict[str, Document]:
    return {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)}


@pytest.fixture(scope="module")
def docs_folder(gold, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for d in gold.values():
        (folder / f"{d.doc_id}.txt").write_text(d.text, encoding="utf-8")
    return folder


def run(ls, capsys, *args: str) -> tuple[int, str, str]:
    """The CLI as a user runs it; the API key must appear in none of its output."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert ls.api_key not in out + err
    return code, out, err


def client_for(ls) -> LabelStudio:
    return LabelStudio(base_url=ls.url, api_key=ls.api_key)


def project_tasks(client: LabelStudio, title: str) -> tuple[int, list]:
    (project,) = [p for p in client.projects.list() if p.title == title]
    return project.id, sorted(client.tasks.list(project=project.id, fields="all"), key=lambda t: t.id)


def annotate(client: LabelStudio, task_id: int, document: Document) -> int:
    """Submit `document`'s spans as the annotation of task `task_id`, as the labelling screen does."""
    return client.annotations.create(id=task_id, result=document_results(document), was_cancelled=False).id


def server_args(ls, project: str, config: Path) -> list[str]:
    return ["--url", ls.url, "--project", project, "--config", str(config)]


@pytest.mark.slow
@pytest.mark.labelstudio
def test_push_with_a_model_orders_by_uncertainty_and_never_duplicates(
    ls, capsys, tiny_model, tiny_project, gold, docs_folder
):
    config = tiny_project / "configs" / "tiny.yaml"
    code, out, err = run(
        ls,
        capsys,
        "ls",
        "push",
        *server_args(ls, "push", config),
        "--model",
        str(tiny_model),
        "--order",
        "uncertainty",
        str(docs_folder),
    )
    assert code == 0, err
    assert "'push' (id" in out and "created with the labelling config for ORG, POLICY_TARGET, SUBSIDY_AMOUNT" in out

    predictor = Predictor.from_pretrained(tiny_model)
    ids = sorted(gold)
    expected = dict(zip(ids, predictor.predict_with_uncertainty([gold[i].text for i in ids])))
    least_sure = max(ids, key=lambda i: expected[i][1])
    assert (
        f"imported 5 new task(s), least certain first, with pre-annotations by model tiny-v1:\n"
        f"  {least_sure}  uncertainty {expected[least_sure][1]:.4f}\n"
    ) in out
    assert "the project shows model tiny-v1's pre-annotations and serves the least certain task first" in out
    client = client_for(ls)
    project_id, tasks = project_tasks(client, "push")
    project = client.projects.get(project_id)
    assert project.label_config.strip() == labeling_config(LABELS).strip()
    assert project.model_version == "tiny-v1" and project.sampling == "Uncertainty sampling"
    # Task ids ascend in import order: the least certain document first.
    assert [t.data["doc_id"] for t in tasks] == sorted(ids, key=lambda i: -expected[i][1])
    for task in tasks:
        entities, uncertainty = expected[task.data["doc_id"]]
        assert task.data["text"] == gold[task.data["doc_id"]].text
        (pre,) = task.predictions
        assert pre.model_version == "tiny-v1" and pre.score == pytest.approx(round(1 - uncertainty, 4))
        assert [
            (r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"], r["score"])
            for r in pre.result
        ] == [(e.start, e.end, e.text, [e.label], round(e.score, 4)) for e in entities]
    assert sum(len(pre.result) for t in tasks for pre in t.predictions) > 0  # the tiny model does find entities

    code, out, err = run(
        ls, capsys, "ls", "push", *server_args(ls, "push", config), "--model", str(tiny_model), str(docs_folder)
    )
    assert code == 0, err
    assert "imported 0 new task(s), with pre-annotations by model tiny-v1\n" in out
    assert "5 already in the project with the same text, not imported again" in out
    assert "added to" not in out
    _, again = project_tasks(client, "push")
    assert [t.id for t in again] == [t.id for t in tasks] and all(len(t.predictions) == 1 for t in again)


@pytest.mark.slow
@pytest.mark.labelstudio
def test_push_refuses_a_changed_text_under_a_known_doc_id(ls, capsys, tiny_project, gold, docs_folder, tmp_path):
    config = tiny_project / "configs" / "tiny.yaml"
    assert run(ls, capsys, "ls", "push", *server_args(ls, "changed", config), str(docs_folder))[0] == 0
    client = client_for(ls)
    _, before = project_tasks(client, "changed")
    assert len(before) == 5 and all(not t.predictions for t in before)

    edited = tmp_path / "001_ns_tech_p1.txt"
    edited.write_text(gold["001_ns_tech_p1"].text.replace("高新技术企业", "科技型企业", 1), encoding="utf-8")
    brand_new = tmp_path / "new_doc.txt"
    brand_new.write_text("对台资企业给予最高300万元补贴。", encoding="utf-8")
    code, out, err = run(ls, capsys, "ls", "push", *server_args(ls, "changed", config), str(edited), str(brand_new))
    assert code == 1
    task_id = next(t.id for t in before if t.data["doc_id"] == "001_ns_tech_p1")
    assert f"{edited}: doc id 001_ns_tech_p1 is task {task_id} in the project with another text" in err
    assert "nothing imported" in err
    _, after = project_tasks(client, "changed")
    assert [(t.id, t.data) for t in after] == [(t.id, t.data) for t in before]


@pytest.mark.slow
@pytest.mark.labelstudio
def test_pull_validates_writes_and_reports_what_changed(
    ls, capsys, tiny_model, tiny_project, gold, docs_folder, tmp_path
):
    config = tiny_project / "configs" / "tiny.yaml"
    assert (
        run(ls, capsys, "ls", "push", *server_args(ls, "pull", config), "--model", str(tiny_model), str(docs_folder))[0]
        == 0
    )
    client = client_for(ls)
    _, tasks = project_tasks(client, "pull")
    task_of = {t.data["doc_id"]: t.id for t in tasks}
    first = annotate(client, task_of["005_ns_tech_p5"], gold["005_ns_tech_p5"])
    annotate(client, task_of["017_gwr_fujian_mintai5y"], gold["017_gwr_fujian_mintai5y"])

    v1 = tmp_path / "annotations" / "pull-v1.json"
    code, out, err = run(ls, capsys, "ls", "pull", *server_args(ls, "pull", config), "--output", str(v1))
    assert code == 0, err
    pulled = {d.doc_id: d for d in load_documents([v1], LABELS)}
    assert pulled.keys() == {"005_ns_tech_p5", "017_gwr_fujian_mintai5y"}
    assert all(pulled[i].spans == gold[i].spans and pulled[i].text == gold[i].text for i in pulled)
    assert "5 task(s), 2 annotated document(s)" in out and "3 task(s) without a submitted annotation" in out
    assert "against no previous version (everything is new): 2 new, 0 changed, 0 removed" in out
    exported = json.loads(v1.read_text(encoding="utf-8"))
    assert len(exported) == 5  # tasks with predictions only stay in the file; the reader skips them
    assert all(p["model_version"] == "tiny-v1" and "result" in p for t in exported for p in t["predictions"])

    # A reviewer drops one span and relabels another; a third document gets annotated.
    reviewed = gold["005_ns_tech_p5"]
    dropped, relabelled = reviewed.spans[0], reviewed.spans[1]
    new_label = next(label for label in LABELS if label != relabelled.label)
    result = document_results(reviewed)[1:]
    result[0]["value"]["labels"] = [new_label]
    client.annotations.update(id=first, result=result)
    annotate(client, task_of["023_gwr_shanxi"], gold["023_gwr_shanxi"])

    v2 = tmp_path / "annotations" / "pull-v2.json"
    code, out, err = run(ls, capsys, "ls", "pull", *server_args(ls, "pull", config), "--output", str(v2))
    assert code == 0, err
    text = reviewed.text
    assert (
        f"changes against {v1}: 1 new, 1 changed, 0 removed, 1 unchanged document(s); "
        f"spans +{len(gold['023_gwr_shanxi'].spans)} -1, 1 relabelled" in out
    )
    assert f"- {dropped.label} {dropped.start}:{dropped.end} {text[dropped.start : dropped.end]!r}" in out
    assert (
        f"~ {new_label} {relabelled.start}:{relabelled.end} {text[relabelled.start : relabelled.end]!r} "
        f"was {relabelled.label}"
    ) in out
    diff = diff_documents(load_documents([v1], LABELS), load_documents([v2], LABELS))
    assert diff.changed == (
        DocumentChange(
            "005_ns_tech_p5", (), (dropped,), ((relabelled, Span(relabelled.start, relabelled.end, new_label)),)
        ),
    )
    assert [d.doc_id for d in diff.new] == ["023_gwr_shanxi"]


@pytest.mark.slow
@pytest.mark.labelstudio
def test_pull_refuses_an_invalid_export_and_leaves_the_files_alone(
    ls, capsys, tiny_project, gold, docs_folder, tmp_path
):
    config = tiny_project / "configs" / "tiny.yaml"
    assert run(ls, capsys, "ls", "push", *server_args(ls, "invalid", config), str(docs_folder))[0] == 0
    client = client_for(ls)
    project_id, tasks = project_tasks(client, "invalid")
    task_of = {t.data["doc_id"]: t.id for t in tasks}
    annotate(client, task_of["005_ns_tech_p5"], gold["005_ns_tech_p5"])
    v1 = tmp_path / "invalid-v1.json"
    assert run(ls, capsys, "ls", "pull", *server_args(ls, "invalid", config), "--output", str(v1))[0] == 0
    kept = v1.read_bytes()

    # The server accepts all of these as they are; only our validation stands between them and training.
    text = gold["023_gwr_shanxi"].text
    bad = task_of["023_gwr_shanxi"]
    client.annotations.create(
        id=bad,
        result=[
            span_result("far", 10, len(text) + 5, "x", "ORG"),
            span_result("wrong-text", 0, 2, "不是", "ORG"),
            span_result("unknown", 2, 4, text[2:4], "PERSON"),
        ],
    )
    # A new file, and the existing one replaced on purpose: neither is written while the export is invalid.
    for output, replace in ((tmp_path / "invalid-v2.json", ()), (v1, ("--overwrite",))):
        code, out, err = run(
            ls, capsys, "ls", "pull", *server_args(ls, "invalid", config), "--output", str(output), *replace
        )
        assert code == 1
        where = f"{ls.url}/projects/{project_id}: task {bad} (doc 023_gwr_shanxi)"
        assert (
            f"{where}: offsets out of range for a text of {len(text)} characters [span id=far ['ORG'] "
            f"10:{len(text) + 5} 'x']" in err
        )
        assert f"{where}: value.text '不是' differs from the task text there {text[0:2]!r}" in err
        assert f"{where}: unknown label 'PERSON'" in err
        assert f"{output} was not written" in err
    assert not (tmp_path / "invalid-v2.json").exists()
    assert v1.read_bytes() == kept


@pytest.mark.slow
@pytest.mark.labelstudio
def test_round_trip_pull_retrain_and_push_the_new_pre_annotations(
    ls, capsys, tiny_model, tiny_project, gold, docs_folder, tmp_path
):
    """The README's loop: push with pre-annotations, annotate, pull, retrain on the pulled file, push the
    new model's pre-annotations onto the same tasks."""
    config = tiny_project / "configs" / "tiny.yaml"
    assert (
        run(
            ls,
            capsys,
            "ls",
            "push",
            *server_args(ls, "loop", config),
            "--model",
            str(tiny_model),
            "--order",
            "uncertainty",
            str(docs_folder),
        )[0]
        == 0
    )
    client = client_for(ls)
    project_id, tasks = project_tasks(client, "loop")
    annotated = ["001_ns_tech_p1", "005_ns_tech_p5", "017_gwr_fujian_mintai5y"]
    for task in tasks:
        if task.data["doc_id"] in annotated:
            annotate(client, task.id, gold[task.data["doc_id"]])

    project = tmp_path / "project"
    pulled = project / "annotations" / "loop-v1.json"
    assert run(ls, capsys, "ls", "pull", *server_args(ls, "loop", config), "--output", str(pulled))[0] == 0
    retrain = dict(
        TINY_CONFIG,
        name="loop",
        data={"annotations": ["annotations/loop-v*.json"], "vocab_sources": [], "dev_documents": ["005_ns_tech_p5"]},
        train=dict(TINY_CONFIG["train"], epochs=3),
    )
    (project / "configs").mkdir()
    (project / "configs" / "loop.yaml").write_text(yaml.safe_dump(retrain), encoding="utf-8")
    code, out, err = run(
        ls, capsys, "train", str(project / "configs" / "loop.yaml"), "--root", str(project), "--version", "loop-v2"
    )
    assert code == 0, err
    model = project / "models" / "loop-v2"
    card = json.loads((model / "model_card.json").read_text(encoding="utf-8"))["data"]
    assert card["annotation_files"] == [{"path": "annotations/loop-v1.json", "sha256": sha256_file(pulled)}]
    assert sorted(card["train_documents"]) == ["001_ns_tech_p1", "017_gwr_fujian_mintai5y"]
    assert card["dev_documents"] == ["005_ns_tech_p5"]

    code, out, err = run(
        ls, capsys, "ls", "push", *server_args(ls, "loop", config), "--model", str(model), str(docs_folder)
    )
    assert code == 0, err
    assert "5 already in the project with the same text" in out
    assert "pre-annotations by model loop-v2 added to 5 of them" in out
    _, after = project_tasks(client, "loop")
    assert [t.id for t in after] == [t.id for t in tasks]
    expected = Predictor.from_pretrained(model).predict([t.data["text"] for t in after])
    for task, entities in zip(after, expected):
        versions = sorted(p.model_version for p in task.predictions)
        assert versions == ["loop-v2", "tiny-v1"]
        (new,) = [p for p in task.predictions if p.model_version == "loop-v2"]
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in new.result] == [
            (e.start, e.end, e.label) for e in entities
        ]
    assert client.projects.get(project_id).model_version == "loop-v2"
    for path in [*project.rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert ls.api_key.encode() not in path.read_bytes(), path


@pytest.mark.slow
@pytest.mark.labelstudio
def test_a_refused_api_key_is_named_but_never_shown(ls, capsys, tiny_project, docs_folder, monkeypatch):
    wrong = "policy-ner-wrong-token-0000000000000000"
    monkeypatch.setenv(API_KEY_ENV, wrong)
    code = main(["ls", "push", *server_args(ls, "refused", tiny_project / "configs" / "tiny.yaml"), str(docs_folder)])
    out, err = capsys.readouterr()
    assert code == 1 and wrong not in out + err
    assert f"Label Studio at {ls.url} refused the API key (HTTP 401): check {API_KEY_ENV} or --api-key" in err


def listening_addresses(port: int) -> set[str]:
    """Addresses with a socket listening on `port`, from /proc/net/tcp{,6} (no tools needed)."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for row in table.read_text().splitlines()[1:] if table.exists() else []:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(
                    socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
                    if len(address) == 8
                    else f"ipv6:{address}"
                )
    return found


@pytest.mark.slow
@pytest.mark.labelstudio
def test_make_labelstudio_refuses_a_port_in_use(label_studio, tmp_path, capsys):
    from policy_ner.labelstudio.server import main as serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve(["--venv", str(VENV), "--data-dir", str(tmp_path / "data"), "--port", str(port)]) == 1
    assert f"error: port {port} on 127.0.0.1 is in use: choose another" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.labelstudio
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_make_labelstudio_serves_on_loopback_and_takes_its_server_down(label_studio, tmp_path, stop_signal):
    """`make labelstudio`'s program, from a copy of the migrated data folder, on a free port. The server
    runs in its own session, so the program must stop it whether it is interrupted or killed."""
    data = tmp_path / "data"
    shutil.copytree(TEMPLATE, data)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "policy_ner.labelstudio.server",
            "--venv",
            str(VENV),
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops the server" in line:
                break
        printed = "".join(lines)
        assert "Label Studio is ready after" in printed and f"http://127.0.0.1:{port}" in printed
        assert "Personal Access Token" in printed and API_KEY_ENV in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "UP"}
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.send_signal(stop_signal)
        assert process.wait(30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.labelstudio
def test_a_title_label_studio_would_refuse_is_refused_before_any_request(ls, capsys, docs_folder, tiny_project):
    config = tiny_project / "configs" / "tiny.yaml"
    code, _, err = run(ls, capsys, "ls", "push", str(docs_folder), *server_args(ls, "ab", config))
    assert code == 1
    assert "project title 'ab' has 2 characters; Label Studio needs 3 to 50" in err
    assert not [p for p in client_for(ls).projects.list() if p.title == "ab"]
    # what the server itself says of such a title reads as a sentence, not as its raw JSON body
    with pytest.raises(LabelStudioError) as refused, connect(ls.url, ls.api_key) as client:
        client.projects.create(title="ab")
    assert "answered HTTP 400: title: Ensure this field has at least 3 characters." in str(refused.value)
    assert "{" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.labelstudio
def test_pull_never_replaces_an_export_unasked_and_diffs_against_what_it_replaces(
    ls, capsys, tiny_project, gold, docs_folder, tmp_path
):
    config = tiny_project / "configs" / "tiny.yaml"
    delivery = tmp_path / "annotations" / "corpus-v1.json"
    delivery.parent.mkdir()
    delivery.write_bytes((tiny_project / "annotations" / "tiny.json").read_bytes())  # 5 annotated documents
    one = tmp_path / "one"
    one.mkdir()
    (one / "023_gwr_shanxi.txt").write_text(gold["023_gwr_shanxi"].text, encoding="utf-8")
    assert run(ls, capsys, "ls", "push", *server_args(ls, "one task", config), str(one))[0] == 0
    client = client_for(ls)
    _, (task,) = project_tasks(client, "one task")
    annotate(client, task.id, gold["023_gwr_shanxi"])

    before = delivery.read_bytes()
    code, _, err = run(ls, capsys, "ls", "pull", *server_args(ls, "one task", config), "--output", str(delivery))
    assert code == 1 and delivery.read_bytes() == before
    assert f"{delivery} already exists; pull into {delivery.with_name('corpus-v2.json')}, or pass --overwrite" in err

    code, out, err = run(
        ls, capsys, "ls", "pull", *server_args(ls, "one task", config), "--output", str(delivery), "--overwrite"
    )
    assert code == 0, err
    assert f"changes against {delivery}: 0 new, 0 changed, 4 removed, 1 unchanged document(s)" in out
    assert f"replaced {delivery} (it held 5 annotated document(s))" in out
    assert [d.doc_id for d in load_documents([delivery], LABELS)] == ["023_gwr_shanxi"]
