"""The architecture the brief asks for, enforced: the engine never imports the UI, the headless
path never loads Textual, and only the lab decides things about the lab."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_backend_never_imports_the_ui():
    offenders = []
    for path in (REPO / "backend").rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in {"textual", "tui", "screens", "rich"}:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def test_engine_modules_do_not_import_the_lab():
    offenders = []
    for path in (REPO / "backend").rglob("*.py"):
        if "lab" in path.relative_to(REPO / "backend").parts:
            continue
        for name in _imports(path):
            if name.startswith("backend.lab"):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def _lab_names() -> set[str]:
    """What names the lab: its provider's name and its host profiles (listed once, in the lab). Its
    scenarios are named after what they play (success, oom, overcommit: the diagnoses' own words)."""
    from backend.lab.profiles import PROFILES
    from backend.lab.provider import NAME

    return {NAME, *PROFILES}


LAB_FILES = re.compile(r"faults\.jsonl|host_profile|pve-requests\.jsonl")
LAB_WORD = re.compile(r"\blab\b", re.IGNORECASE)


def _names_the_lab(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """Where a module names the lab: a string constant that is one of its names or mentions its
    files (docstrings included), an identifier (a name, an attribute, an argument, an import) that
    says lab or host_profile."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if value.strip().lower() in names or LAB_FILES.search(value) or id(node) not in docstrings and LAB_WORD.search(value) and len(value) < 40:
                found.append((line, repr(value[:60])))
        identifiers = []
        if isinstance(node, ast.Name):
            identifiers = [node.id]
        elif isinstance(node, ast.Attribute):
            identifiers = [node.attr]
        elif isinstance(node, ast.arg) or isinstance(node, ast.keyword) and node.arg:
            identifiers = [node.arg]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            identifiers = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
        for name in identifiers:
            if re.search(r"(^|[._])lab($|[._])|host_profile", name, re.IGNORECASE):
                found.append((line, name))
    return found


def test_nothing_in_the_engine_names_the_lab():
    """Nothing in backend/ outside backend/lab/ names the lab, its files or its profiles (AST: string
    constants and identifiers; comments are free to explain what a fast simulated target does)."""
    names = _lab_names()
    offenders = []
    for path in (REPO / "backend").rglob("*.py"):
        if "lab" in path.relative_to(REPO / "backend").parts:
            continue
        offenders += [f"{path.relative_to(REPO)}:{line}: {what}"
                      for line, what in _names_the_lab(ast.parse(path.read_text()), names)]
    assert not offenders, offenders


@pytest.mark.parametrize("source", [
    'URL = "lab"',
    'if answers.proxmox.url == "lab": pass',
    'x = answers.lab.faults',
    'path = run / "lab" / "faults.jsonl"',
    'PROFILE = "seed"',
    'def f(lab_dir): pass',
    'from backend.lab import provider',
    'f(host_profile="big")',
])
def test_the_lab_name_check_sees_every_way_of_naming_it(source):
    assert _names_the_lab(ast.parse(source), _lab_names())
    assert not _names_the_lab(ast.parse('"""A fast lab-like target compresses time."""\nX = "label"'), _lab_names())


def test_headless_paths_never_load_textual():
    code = (
        "import sys\n"
        "from tui import cli, headless\n"
        "import backend.lab, backend.run.engine, backend.run.plan\n"
        "cli.main(['schema'])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'textual'], 'textual was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_module_has_a_docstring():
    missing = []
    for folder in ("backend", "tui", "screens"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if path.stat().st_size and ast.get_docstring(tree) is None:
                missing.append(str(path.relative_to(REPO)))
    assert not missing, missing


# The product's rules: the lab stands in for the real world, so it must never answer by them (a lab
# that imports the sizing rule confirms the rule it should be testing).
RULES = {"sizing", "tuning", "vmconfig", "provision", "prepare", "install", "diagnose", "recovery", "preflight",
         "guestmemory"}


def _imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module a file of `package` imports, `from backend import x` and relative imports resolved."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _rules_in(source: str, package: tuple[str, ...]) -> set[str]:
    return {name for name in _imported_modules(source, package)
            if name.split(".")[:1] == ["backend"] and name.split(".")[1:2] != ["lab"]
            and any(part in RULES for part in name.split(".")[1:])}


def test_the_lab_never_imports_the_products_rules():
    offenders = []
    for path in (REPO / "backend" / "lab").rglob("*.py"):
        package = path.relative_to(REPO).with_suffix("").parts[:-1]
        offenders += [f"{path.relative_to(REPO)} imports {name}" for name in _rules_in(path.read_text(), package)]
    assert not offenders, offenders


@pytest.mark.parametrize(("package", "line"), [
    (("backend", "lab"), "from backend.model.sizing import MEMORY_MIN_GIB"),
    (("backend", "lab"), "from backend import diagnose"),
    (("backend", "lab", "vast"), "import backend.steps.recovery"),
    (("backend", "lab"), "from ..preflight import judge"),
    (("backend", "lab", "guest"), "from ... import tuning"),
    (("backend", "lab"), "def f():\n    from backend.model.guestmemory import guest_gib"),
])
def test_the_rule_import_check_sees_every_form_of_import(package, line):
    """The guard above fails on a lab that imports a rule, however the import is written."""
    assert _rules_in(line, package)
    assert not _rules_in("from backend.clock import Clock\nfrom backend.lab import facts", package)


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return names


def test_the_clients_only_call_the_front_door():
    """`tui/` and `screens/` build no Engine and no RunContext: starting, resuming, retrying and
    replaying a run live once, in backend/run/service.py."""
    offenders = [f"{path.relative_to(REPO)} calls {name}"
                 for folder in ("tui", "screens") for path in (REPO / folder).rglob("*.py")
                 for name in _calls(path) & {"Engine", "RunContext"}]
    assert not offenders, offenders


def test_no_step_reads_an_untyped_fact():
    """Steps read typed facts (backend/run/facts.py), never `require(ctx, "...")` nor `ctx.facts[...]`."""
    offenders = []
    for path in (REPO / "backend").rglob("*.py"):
        text = path.read_text()
        if "require(ctx" in text or re.search(r"ctx\.facts(\[|\.get\()", text):
            offenders.append(str(path.relative_to(REPO)))
        if "require" in _calls(path) and "def require" not in text:
            offenders.append(f"{path.relative_to(REPO)} calls require()")
    assert not offenders, offenders


def test_vulture_finds_no_dead_code():
    """vulture at 60 % confidence (pyproject.toml [tool.vulture]: callbacks by pattern, reviewed
    names in vulture_whitelist.py) finds nothing: dead code is deleted, not kept."""
    pytest.importorskip("vulture")
    result = subprocess.run([sys.executable, "-m", "vulture"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout[-3000:]
