"""The code's shape: imports point one way, and every DVC stage declares what it reads.

Both tests read the source with ``ast`` (nothing is imported): a module's imports include
those inside functions, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dftnet", "baselines")


def module_file(name: str) -> Path | None:
    """``dftnet.eval.judge`` -> its file in this project, or None (a third-party module)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # `from dftnet import atomic` imports the module dftnet.atomic where it exists.
        subs = [f"{node.module}.{a.name}" for a in node.names]
        return [node.module] + [s for s in subs if module_file(s)]
    return []


def imports_in(tree: ast.AST) -> set[Path]:
    out = set()
    for node in ast.walk(tree):
        for name in _imported_names(node):
            path = module_file(name)
            if path is not None:
                out.add(path)
    return out


@lru_cache(maxsize=None)
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def project_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_import_circle_in_dftnet_and_baselines():
    graph = {p: imports_in(parsed(p)) - {p} for p in project_modules()}
    # A package's __init__ is imported with any of its modules: not an edge of the design.
    graph = {p: {q for q in deps if q.name != "__init__.py"} for p, deps in graph.items()}
    state: dict[Path, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(p: Path, path: list[Path]) -> None:
        state[p] = 1
        for q in sorted(graph.get(p, set())):
            if state.get(q) == 1:
                cycles.append(path[path.index(q):] + [q])
            elif q not in state:
                visit(q, path + [q])
        state[p] = 2

    for p in graph:
        if p not in state:
            visit(p, [p])
    names = [" -> ".join(str(x.relative_to(ROOT)) for x in c) for c in cycles]
    assert not names, "import circle(s):\n" + "\n".join(names)


# Which parts of the project each part may import (docs/layout.md): imports point one way, from
# the entry points down to the runtime. The entry points (cli, commands, stages, edit, fanout)
# may import anything; nothing but an entry point imports them.
MAY_IMPORT = {
    "runtime": set(),
    "config": {"runtime"},
    "data": {"runtime", "config"},
    "nets": {"runtime", "config", "data", "baselines"},  # generators.py builds GANimation by name
    "baselines": {"runtime", "config", "data", "nets"},
    "eval": {"runtime", "config", "data", "nets"},
    "training": {"runtime", "config", "data", "nets", "eval"},  # the learning curve reads the judge
    "reporting": {"runtime", "config", "data", "nets", "eval"},
}
ENTRY_POINTS = {"cli", "commands", "stages", "edit", "fanout", "__init__"}


def part_of(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] != "dftnet":
        return parts[0]
    return parts[1] if len(parts) > 2 else parts[1].removesuffix(".py")


def test_imports_point_from_the_entry_points_down_to_the_runtime():
    wrong = sorted(f"{m.relative_to(ROOT)} imports {t.relative_to(ROOT)}"
                   for m in project_modules() for t in imports_in(parsed(m))
                   if part_of(t) != part_of(m) and t.name != "__init__.py"
                   and ((part_of(t) in ENTRY_POINTS and part_of(m) not in ENTRY_POINTS) or (part_of(m) in MAY_IMPORT
                                                        and part_of(t) not in MAY_IMPORT[part_of(m)])))
    assert not wrong, "imports against the layout:\n" + "\n".join(wrong)
    assert set(MAY_IMPORT) | ENTRY_POINTS >= {part_of(m) for m in project_modules()}  # every module has a place


# ----------------------------------------------------------------- dvc dependencies
def _module_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _called_names(fn: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def stage_entry(script: Path) -> tuple[Path, set[str]]:
    """The pipeline script's call into ``dftnet.stages``: (stages.py, the functions it calls)."""
    tree = parsed(script)
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
              and n.value.id == "stages"}
    return ROOT / "dftnet" / "stages.py", called


def stage_functions(script: Path, skip: tuple[str, ...] = ()) -> tuple[Path, dict, set[str]]:
    """(stages.py, its functions, the names of those the script calls, directly or through others)."""
    stages_py, entry = stage_entry(script)
    funcs = _module_functions(parsed(stages_py))
    todo, seen = [e for e in entry if e not in skip], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        todo += _called_names(funcs[name]) & set(funcs)
    return stages_py, funcs, seen


def files_read_by(script: Path) -> set[Path]:
    """Every project file the stage's command can import: the script, the stage functions it
    calls in stages.py (and the stages.py functions those call), and everything they import,
    transitively."""
    stages_py, funcs, seen_fn = stage_functions(script)
    top_level = ast.Module(body=[n for n in parsed(stages_py).body if not isinstance(n, ast.FunctionDef)], type_ignores=[])
    files = {script, stages_py}
    todo_files = list(imports_in(parsed(script)) | imports_in(top_level)
                      | set().union(*(imports_in(funcs[f]) for f in seen_fn)))
    while todo_files:
        p = todo_files.pop()
        if p in files:
            continue
        files.add(p)
        todo_files += imports_in(parsed(p))
    return files


def _stages() -> list[tuple[str, dict, dict]]:
    """(name, stage, params) with foreach stages expanded for their first item."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = []
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            key = next(iter(params[stage["foreach"][2:-1]]))
            text = yaml.safe_dump(stage["do"]).replace("${key}", key)
            out.append((f"{name}@{key}", yaml.safe_load(text), params))
        else:
            out.append((name, stage, params))
    return out


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name,stage,params", _stages(), ids=[s[0] for s in _stages()])
def test_each_stage_declares_every_module_it_imports(name, stage, params):
    script = ROOT / re.search(r"python (\S+\.py)", stage["cmd"]).group(1)
    deps = [d for d in stage.get("deps", []) if "${" not in d]
    missing = sorted(p.relative_to(ROOT).as_posix() for p in files_read_by(script) if not _covered(p, deps))
    assert not missing, f"stage {name}: dvc.yaml deps miss {missing}"


# The params a stage function reads, beyond ``params.<a>.<b>`` chains in its own body: what
# the library calls it passes ``params`` to read from it.
READS_OF_CALLS = {
    "resolve_variant": {"model", "train", "variants", "data.image_size"},
    "resolve_model": {"model", "variants"},
    "dataset": {"data.root", "data.image_size"},
}


def params_read_by(script: Path) -> set[str]:
    _, funcs, seen_fn = stage_functions(script, skip=("load",))  # load() validates every key: not a use
    keys: set[str] = set()
    for fn in (funcs[f] for f in seen_fn):
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute):
                chain, cur = [], node
                while isinstance(cur, ast.Attribute):
                    chain.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "params":
                    keys.add(".".join(reversed(chain)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in READS_OF_CALLS:
                if any(isinstance(a, ast.Name) and a.id == "params" for a in node.args):
                    keys |= READS_OF_CALLS[node.func.id]
    # Keep the longest chains only: params.eval.seed also shows up as params.eval.
    return {k for k in keys if not any(o != k and o.startswith(k + ".") for o in keys)}


@pytest.mark.parametrize("name,stage,params", _stages(), ids=[s[0] for s in _stages()])
def test_each_stage_declares_every_param_it_reads(name, stage, params):
    script = ROOT / re.search(r"python (\S+\.py)", stage["cmd"]).group(1)
    declared = [str(p) for p in stage.get("params", [])]
    uses_root = any("${data.root}" in str(d) for d in stage.get("deps", []) + stage.get("outs", []))
    missing = sorted(k for k in params_read_by(script)
                     if not any(k == d or k.startswith(d + ".") or (k.startswith("variants.") and d == "variants")
                                for d in declared)
                     and not (k == "data.root" and uses_root)
                     and not (name.startswith(("train@", "evaluate@")) and k == "variants"
                              and any(d.startswith("variants.") for d in declared)))
    assert not missing, f"stage {name}: dvc.yaml params miss {missing}"


def test_the_code_passes_the_linter():
    """``make lint``: ruff as pyproject.toml configures it (skipped where ruff is not installed)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "dftnet", "baselines",
                          "benchmarks", "pipelines", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_the_code_passes_the_type_checker():
    """``make lint``'s second half: mypy as pyproject.toml configures it (skipped where mypy is
    not installed)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
