"""The local transformers backend: ``Transformers`` (a causal LM from a folder or a GGUF file, offline).

Importing this package is cheap; torch and transformers load when a model does.
"""

from __future__ import annotations

from interlock.generators.transformers.backend import Transformers, load_default_model
from interlock.generators.transformers.errors import (
    ContextOverflowError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
)
from interlock.generators.transformers.loading import CACHE_ENV, cache_dir, default_model_path, load_model
from interlock.generators.transformers.prompting import PromptFormatter
from interlock.generators.transformers.sampling import Sampling

__all__ = [
    "CACHE_ENV",
    "ContextOverflowError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelNotFoundError",
    "PromptFormatter",
    "Sampling",
    "Transformers",
    "cache_dir",
    "default_model_path",
    "load_default_model",
    "load_model",
]
