"""The converted-model cache is keyed by the GGUF file's content: a reinstall (new path, new mtime) finds the
converted copy again, a changed file does not, and one copy per model is kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from interlock.generators.transformers import ModelLoadError, Transformers
from interlock.generators.transformers.loading import content_key
from tiny_model import tiny_model_dir  # noqa: F401  (fixture)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("INTERLOCK_CACHE_DIR", str(root))
    return root / "models"


def _gguf(folder: Path, content: bytes, name: str = "smol-Q8_0.gguf") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def _converted(cache: Path, gguf: Path, model: Path) -> Path:
    """Put a converted model where the cache keeps the one for ``gguf`` (what a first load would have written)."""
    target = cache / f"{gguf.stem}-{content_key(gguf)}"
    shutil.copytree(model, target)
    (target / ".complete").write_text("ok\n")
    return target


def test_a_reinstalled_file_with_the_same_content_finds_its_converted_copy(
        tmp_path: Path, cache: Path, tiny_model_dir: Path) -> None:  # noqa: F811
    first = _gguf(tmp_path / "site-packages-1", b"GGUF" + b"\x01" * 4096)
    target = _converted(cache, first, tiny_model_dir)
    again = _gguf(tmp_path / "site-packages-2", b"GGUF" + b"\x01" * 4096)  # a reinstall: new path, new mtime
    os.utime(again, ns=(1, 1))
    assert content_key(again) == content_key(first)
    generator = Transformers(again)  # the fake GGUF bytes would fail to convert: this load is the cached copy
    assert generator.model is not None
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [target.name]


def test_changed_content_is_not_mistaken_for_the_cached_copy(tmp_path: Path, cache: Path,
                                                            tiny_model_dir: Path) -> None:  # noqa: F811
    old = _gguf(tmp_path / "a", b"GGUF" + b"\x01" * 4096)
    _converted(cache, old, tiny_model_dir)
    new = _gguf(tmp_path / "b", b"GGUF" + b"\x02" * 4096)  # same name and size, other bytes
    os.utime(new, ns=(old.stat().st_atime_ns, old.stat().st_mtime_ns))
    assert content_key(new) != content_key(old)
    with pytest.raises(ModelLoadError, match="could not load the GGUF file"):
        Transformers(new)  # a conversion was attempted (and fails on fake bytes): no stale copy was used


def test_one_copy_is_kept_older_ones_and_abandoned_scratch_are_removed(
        tmp_path: Path, cache: Path, tiny_model_dir: Path) -> None:  # noqa: F811
    gguf = _gguf(tmp_path / "pkg", b"GGUF" + b"\x03" * 4096)
    cache.mkdir(parents=True)
    older = cache / f"{gguf.stem}-0123456789ab"  # the old name/size/mtime key
    shutil.copytree(tiny_model_dir, older)
    (older / ".complete").write_text("ok\n")
    writing = cache / f"{gguf.stem}-feedfacefeedface"  # no .complete: another process may be writing it
    writing.mkdir()
    abandoned = cache / f".{gguf.stem}-deadbeef-xyz"
    abandoned.mkdir()
    os.utime(abandoned, (1, 1))
    other_model = cache / "other-0123456789abcdef"
    other_model.mkdir()
    (other_model / ".complete").write_text("ok\n")
    current = _converted(cache, gguf, tiny_model_dir)
    Transformers(gguf)
    left = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert left == sorted([current.name, writing.name, other_model.name])
