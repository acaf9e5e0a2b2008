"""The package's boundaries (issue 37): one owner of the run folder's manifest, the shared training loop apart from
evaluation, short functions, a thin CLI that imports nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys

from .test_imports import PACKAGE, import_graph, modules

# keys a checkpoint manifest has and no other row likra reads (``likra.checkpoints.Manifest``'s fields; "heads" or
# "loss" are also an items row's and a training log's); reading one anywhere else means a module went round the
# typed manifest. Its file name and formats, as string constants, likewise.
MANIFEST_KEYS = {"base_model", "examples_seen", "format_version", "question_ids", "data"}
MANIFEST_WORDS = {"likra.json", "likra-checkpoint", "likra-nat-checkpoint"}
# results JSON that records the checkpoint it scored (``Manifest.describe``), read back by the reports
RESULTS_READERS = {"likra.cli_output", "likra.report"}
HEAVY = ("torch", "transformers", "peft", "fastapi", "matplotlib", "numpy", "sklearn", "trl", "lm_eval", "datasets")


def reads(tree: ast.AST) -> list[tuple[int, str]]:
    """``x["key"]`` and ``x.get("key")`` with a string constant key, by line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            found.append((node.lineno, node.slice.value))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            found.append((node.lineno, node.args[0].value))
    return [(line, key) for line, key in found if isinstance(key, str)]


def test_no_module_but_checkpoints_reads_a_manifest():
    offences = []
    for name, path in modules().items():
        if name == "likra.checkpoints":
            continue
        tree = ast.parse(path.read_text())
        offences += [f"{name}:{node.lineno} names {node.value!r}" for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and node.value in MANIFEST_WORDS]  # fmt: skip
        for line, key in reads(tree):
            if key in MANIFEST_KEYS and not (name in RESULTS_READERS and key == "examples_seen"):
                offences.append(f"{name}:{line} reads [{key!r}]")
    assert not offences, "\n".join(offences)


def test_training_nat_and_calibration_do_not_import_evaluation():
    graph = import_graph()
    importers = ["likra.training", "likra.loop", "likra.calibration", "likra.nat.cli"] + [
        n for n in graph if n.startswith("likra.nat.")]  # fmt: skip
    offences = [n for n in importers if "likra.evaluation" in graph[n]]
    assert not offences, offences
    assert "likra.loop" in graph["likra.nat.training"] and "likra.loop" in graph["likra.training"]


def test_no_function_is_longer_than_60_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, "\n".join(long)


def test_the_cli_is_short_and_imports_nothing_heavy():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) < 500
    code = "import sys, likra.cli\nprint(','.join(m for m in sys.argv[1:] if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"likra.cli imports {result.stdout.strip()} before any command runs"


def test_configs_check_themselves_and_nobody_calls_check():
    trees = {name: ast.parse(path.read_text()) for name, path in modules().items()}
    calls = [f"{name}:{node.lineno}" for name, tree in trees.items() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("check", "check_loop") and not node.args]  # fmt: skip
    assert not calls, calls
