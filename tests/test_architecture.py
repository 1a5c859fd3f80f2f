"""The package's architecture: layers that follow the data flow, no import cycles, and a light core
that answers the everyday commands without loading torch, transformers, datasets or numba."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from conftest import CORPUS_EXPORT, ROOT

HEAVY = ("torch", "transformers", "datasets", "numba")


def test_the_layer_contract_is_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [lint_imports, str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("policy_ner", include_external_packages=False)
    assert len(graph.modules) > 30
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


LIGHT_COMMANDS = {
    "annotations validate": ["annotations", "validate", str(CORPUS_EXPORT)],
    "annotations stats": ["annotations", "stats", str(CORPUS_EXPORT)],
    "models list": ["models", "list", "--models-dir", "{tmp}"],
    "config schema": ["config", "schema"],
    "data verify": ["data", "verify", str(ROOT / "data" / "manifest.csv")],
    "--help": ["--help"],
}


@pytest.mark.parametrize("command", LIGHT_COMMANDS)
def test_everyday_commands_load_no_heavy_library(command, tmp_path):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in LIGHT_COMMANDS[command]]
    probe = (
        "import json, sys\nfrom policy_ner.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        f"print(json.dumps({{'code': code, 'heavy': sorted({{m.split('.')[0] for m in sys.modules}}"
        f" & set({list(HEAVY)!r}))}}))"
    )
    result = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "heavy": []}, result.stderr


def test_evaluating_a_prediction_file_loads_no_heavy_library(tmp_path):
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.predict.outputs import prediction_record
    from policy_ner.types import Entity

    docs = load_documents([CORPUS_EXPORT], ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"])
    predictions = tmp_path / "gold.jsonl"
    predictions.write_text(
        "".join(
            json.dumps(
                prediction_record(
                    d.doc_id, d.text, [Entity(s.label, s.start, s.end, s.text_in(d.text), 1.0) for s in d.spans]
                ),
                ensure_ascii=False,
            )
            + "\n"
            for d in docs
        ),
        encoding="utf-8",
    )
    for argv in (
        ["evaluate", str(predictions), str(CORPUS_EXPORT), "--output", str(tmp_path / "report"), "--samples", "50"],
        [
            "compare",
            str(predictions),
            str(predictions),
            "--on",
            str(CORPUS_EXPORT),
            "--output",
            str(tmp_path / "compare"),
            "--samples",
            "50",
        ],
    ):
        probe = (
            "import json, sys\nfrom policy_ner.cli import main\ncode = main(sys.argv[1:])\n"
            f"print(json.dumps({{'code': code, 'heavy': sorted({{m.split('.')[0] for m in sys.modules}}"
            f" & set({list(HEAVY)!r}))}}))"
        )
        result = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True)
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome == {"code": 0, "heavy": []}, result.stderr
    assert json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))["micro"]["f1"] == 1.0
