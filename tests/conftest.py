"""Shared fixtures: the scripted chat server and the location of ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `from chat_server import user_texts`

from chat_server import ScriptedChatServer

# The tests' models are tiny; on a loaded 2-core machine OpenMP threads make them far slower, not faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tests must never reach a real endpoint or hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
for _var in ("LYCEUM_BASE_URL", "OPENAI_BASE_URL", "LYCEUM_MODEL", "OPENAI_MODEL"):
    os.environ.pop(_var, None)

SHARED_DATA = Path(os.environ.get("LYCEUM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def chat_server():
    server = ScriptedChatServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hipho_dir(shared_data) -> Path:
    d = shared_data / "hipho"
    if not d.is_dir():
        pytest.skip(f"HiPhO data not found at {d}")
    return d


@pytest.fixture(scope="session")
def tables_dir(shared_data) -> Path:
    d = shared_data / "tables"
    if not d.is_dir():
        pytest.skip(f"tables not found at {d}")
    return d
