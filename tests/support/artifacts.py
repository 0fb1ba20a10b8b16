"""Hostile model files for the artifact and security tests."""

from __future__ import annotations

from pathlib import Path


class Plant:
    """A pickle that creates a file when it is loaded (what a malicious model.joblib could do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
