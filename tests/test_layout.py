"""The package layout: one ``interlock`` namespace, applications above the core, no import circles."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import interlock
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"monitor": "interlock.monitor", "verifiers": "interlock.verifiers", "generators": "interlock.generators"}
APPLICATIONS = ("agents", "budgets", "cli", "governors", "mcp", "policies", "proxy", "replay")


def module_files() -> dict[str, Path]:
    """Every module of the namespace, by its import name."""
    modules = {"interlock": ROOT / "monitor/_front/__init__.py",
               "interlock.__main__": ROOT / "monitor/_front/__main__.py",
               "interlock._version": ROOT / "monitor/_front/_version.py",
               "interlock.telemetry": ROOT / "monitor/_front/telemetry.py"}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder)
            if rel.parts[0] == "_front":
                continue
            parts = [package, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _in_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The namespace's modules that ``name`` imports when it runs: at module level or inside functions, but not
    under ``if TYPE_CHECKING`` (annotations only)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _in_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            for alias in node.names:
                found.add(f"{base}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def is_core(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["interlock", "monitor"] and (len(parts) == 2 or parts[2] not in APPLICATIONS)


def test_no_core_module_imports_an_application() -> None:
    offenders = sorted((m, dep) for m, deps in graph().items() if is_core(m)
                       for dep in deps if dep.startswith("interlock.monitor.") and not is_core(dep))
    assert offenders == []


def test_the_import_graph_has_no_circles() -> None:
    g = graph()
    # A package's __init__ re-exporting its own modules is not a circle: drop package -> own-submodule edges
    # for the cycle search, but keep every module -> package edge.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def dfs(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                dfs(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            dfs(node)
    assert cycles == []


def test_each_module_imports_alone() -> None:
    """Each module imports first, in a process where no other interlock module was imported before it."""
    names = sorted(module_files())
    script = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'interlock' or m.startswith('interlock.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                         cwd=os.path.expanduser("~"), check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


def test_the_front_door_exports_what_it_lists() -> None:
    assert interlock.__version__ and interlock.__version__[0].isdigit()
    missing = [name for name in interlock.__all__ if not hasattr(interlock, name)]
    assert missing == []
    assert interlock.Monitor is interlock.monitor.Monitor
    from interlock.verifiers import Arithmetic

    assert interlock.Arithmetic is Arithmetic


def test_importing_interlock_loads_no_heavy_dependency() -> None:
    heavy = ("torch", "sympy", "z3", "transformers")
    script = f"import interlock, sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=os.path.expanduser("~"), check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_python_dash_m() -> None:
    out = subprocess.run([sys.executable, "-m", "interlock", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=os.path.expanduser("~"), check=True)
    assert out.stdout.strip() == f"interlock {interlock.__version__}"


def test_pyproject_lists_every_package() -> None:
    """setuptools installs only the packages listed: a folder missing from the list is missing from the wheel
    (an editable install would not show it)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {"interlock"} | {
        ".".join([package, *init.parent.relative_to(ROOT / folder).parts])
        for folder, package in PACKAGES.items() for init in (ROOT / folder).rglob("__init__.py")
        if "_front" not in init.parts}
    assert sorted(on_disk - set(config["packages"])) == []
    assert sorted(set(config["packages"]) - on_disk) == []


def _seeing_this_interpreter(env_dir: Path) -> None:
    """Let the venv at ``env_dir`` import what the interpreter running the suite imports (its site-packages, and
    those of the interpreter under it when it is a venv with system site packages): a ``.pth`` file naming them,
    after the venv's own site-packages. ``system_site_packages=True`` would only reach the base interpreter's
    packages, not those of the venv the suite runs in."""
    ours = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    purelib = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(purelib) / "_suite_packages.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")


@pytest.mark.slow
def test_a_fresh_environment_installs_only_the_interlock_namespace(tmp_path: Path) -> None:
    """In a new virtual environment: ``import interlock`` works, ``import monitor`` does not, and PyPI's own
    ``verifiers`` package imports beside ours."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    _seeing_this_interpreter(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", str(ROOT)], check=True, timeout=600, cwd=tmp_path)
    try:
        subprocess.run([*pip, "verifiers==0.4.0"], check=True, timeout=600, cwd=tmp_path)
    except subprocess.CalledProcessError:
        pytest.skip("PyPI's verifiers package could not be installed here (no package index?)")
    probe = (
        "import importlib.util, json, interlock, interlock.verifiers, verifiers\n"
        "print(json.dumps({'monitor': importlib.util.find_spec('monitor') is not None,\n"
        "                  'generators': importlib.util.find_spec('generators') is not None,\n"
        "                  'ours': interlock.verifiers.__file__, 'theirs': verifiers.__file__}))\n"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["monitor"] is False and found["generators"] is False
    assert Path(found["ours"]).resolve() == (ROOT / "verifiers" / "__init__.py").resolve()
    assert "site-packages" in found["theirs"]
