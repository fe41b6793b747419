"""A new virtual environment with only interlock's declared base dependencies (no extras, nothing inherited from
the interpreter running the suite) installs interlock as a user would get it (a wheel, not the source tree),
imports every module of the ``interlock`` namespace, and answers each feature that needs an extra with an error
naming that extra.

The decision this test keeps: every module imports without the extras (heavy and optional packages are imported
inside the functions that need them); what fails is using such a feature, with a message saying what to install.
The install reads the package index (PyPI, or pip's cache): it is marked slow, and CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
from test_layout import module_files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "monitor", "verifiers", "generators")
# one top-level module of each extra: none of them may be in the base environment
EXTRAS = {"hf": ("torch", "transformers", "gguf", "accelerate"), "ray": ("ray", "pyarrow"),
          "proxy": ("prometheus_client",), "budget": ("math_verify", "matplotlib")}

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the new venv see the suite's packages or settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("INTERLOCK_")}


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The new venv's ``bin`` folder, interlock installed in it from a copy of the sources (so the build never
    writes into the checkout) with the base dependencies at the versions of .ci/constraints.txt."""
    root = tmp_path_factory.mktemp("fresh-install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    venv.create(root / "venv", with_pip=True)  # no system site packages: only what pip puts there
    bin_dir = root / "venv" / "bin"
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-c", str(ROOT / ".ci" / "constraints.txt"), str(src)],
                          capture_output=True, text=True, timeout=900, cwd=root, env=_clean_env(), check=False)
    if done.returncode != 0:
        pytest.fail(f"pip could not install interlock with its base dependencies:\n{done.stderr[-3000:]}")
    return bin_dir


def _python(bin_dir: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=_clean_env(), check=False)


def test_every_module_imports_with_only_the_base_dependencies(base_env: Path, tmp_path: Path) -> None:
    names = sorted(module_files())
    probe = (
        "import importlib, importlib.util, json\n"
        f"names, extras = {names!r}, {sorted(m for ms in EXTRAS.values() for m in ms)!r}\n"
        "failed, files = {}, {}\n"
        "for name in names:\n"
        "    try:\n"
        "        files[name] = importlib.import_module(name).__file__\n"
        "    except BaseException as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps({'failed': failed, 'files': files,\n"
        "                  'extras': [m for m in extras if importlib.util.find_spec(m) is not None]}))\n"
    )
    done = _python(base_env, probe, tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["extras"] == []  # the environment really holds no extra
    assert found["failed"] == {}
    # each module came from the installed wheel, none from the checkout: the wheel lists every package
    site = base_env.parent / "lib"
    assert sorted(n for n, f in found["files"].items() if not Path(f).resolve().is_relative_to(site.resolve())) == []


def test_features_that_need_an_extra_name_it(base_env: Path, tmp_path: Path) -> None:
    interlock = str(base_env / "interlock")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    run = subprocess.run([interlock, "run", "What is 12*7?", "--model", str(model)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=_clean_env(), check=False)
    assert run.returncode == 2
    assert run.stderr.startswith("interlock run: error: the transformers backend needs torch and transformers")
    assert '".[hf]"' in run.stderr

    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"id": "a", "text": "So 2 + 2 = 4.", "answer": "4"}) + "\n")
    (tmp_path / "traces.parquet").write_bytes(b"PAR1")
    for args, message in [
        (["replay", "traces.parquet", "-v", "arithmetic"],
         "interlock replay: error: reading Parquet needs pyarrow: pip install 'interlock[ray]' (or pyarrow)"),
        (["replay", "traces.jsonl", "-v", "arithmetic", "--output", "out.parquet"],
         "interlock replay: error: writing Parquet needs pyarrow: pip install 'interlock[ray]'"),
        (["replay", "traces.jsonl", "-v", "arithmetic", "--engine", "ray"],
         "interlock replay: error: the Ray engine needs Ray Data: pip install 'interlock[ray]'"),
        (["budget", "traces.jsonl", "--tokenizer", "whitespace", "-p", "cap:64"],
         "interlock budget: error: scoring answers needs the math-verify package: pip install 'interlock[budget]'"),
        (["budget", "traces.jsonl", "--tokenizer", "smollm2", "-p", "cap:64"],
         "interlock budget: error: the SmolLM2 tokenizer needs transformers: pip install 'interlock[hf]' "
         "(or use --tokenizer whitespace)"),
    ]:
        done = subprocess.run([interlock, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env=_clean_env(), check=False)
        assert (done.returncode, done.stderr.strip().splitlines()[-1:]) == (2, [message]), (args, done.stderr)

    probe = (
        "import anyio, httpx\n"
        "from interlock.generators import Scripted\n"
        "from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app, serving\n"
        "async def main():\n"
        "    app = create_app(ProxyConfig(GeneratorBackend(Scripted('So 2 + 2 = 4.'), model='s')))\n"
        "    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:\n"
        "        page = await http.get(url + '/metrics')\n"
        "    print(page.status_code, page.json()['error']['message'])\n"
        "anyio.run(main)\n"
    )
    done = _python(base_env, probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "501 metrics need prometheus-client: pip install 'interlock[proxy]'"

