"""Model access: local HF causal LMs (``local``), tiny tokenizers (``tokenizers``), chat endpoints (``chat``).

Import-light on purpose: ``import lyceum.models`` pulls in neither torch nor openai; the names below load their
module on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LocalLM": "lyceum.models.local",
    "Samples": "lyceum.models.local",
    "Scores": "lyceum.models.local",
    "load_local": "lyceum.models.local",
    "build_tiny": "lyceum.models.local",
    "check_same_vocab": "lyceum.models.local",
    "char_tokenizer": "lyceum.models.tokenizers",
    "ChatClient": "lyceum.models.chat",
    "ChatResult": "lyceum.models.chat",
    "user_message": "lyceum.models.chat",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lyceum.models' has no attribute {name!r}")
