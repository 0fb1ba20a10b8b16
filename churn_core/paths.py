"""Where the project's own files are: the repository root and the model code shipped to SageMaker."""

from __future__ import annotations

import hashlib
import importlib
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
ENTRY_DIR = ROOT / "entry"  # the SageMaker source directory, shipped whole as sourcedir.tar.gz
ENTRY = ENTRY_DIR / "train.py"  # the training and inference script, run alone on SageMaker too


@lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 over every module of ``entry/`` (names and bytes): the code version each model records."""
    digest = hashlib.sha256()
    for path in sorted(ENTRY_DIR.glob("*.py")):
        digest.update(f"{path.name}\0{len(path.read_bytes())}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def entry_module(name: str) -> ModuleType:
    """A module of ``entry/`` imported by its own name, as the container imports it (its folder on
    ``sys.path``), so the dashboard applies the same rules as the model server."""
    if str(ENTRY_DIR) not in sys.path:
        sys.path.insert(0, str(ENTRY_DIR))
    return importlib.import_module(name)
