"""Model artifacts: SHA-256, tarballs, and reading JSON members without ever unpickling.

joblib files are pickles, so nothing here loads them; the serving process loads a model
only after ``verify_sha256`` passed.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from churn_core.errors import ValidationError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(data: bytes, expected: str, what: str = "model artifact") -> None:
    actual = sha256_bytes(data)
    if actual != expected:
        raise ValidationError(
            f"The {what} failed its integrity check (SHA-256 {actual[:12]}… but {expected[:12]}… was recorded "
            "when it was produced). It was changed or corrupted after training, so it will not be loaded. "
            "Retrain the model or restore the original file."
        )


def make_tarball(folder: Path, target: Path) -> None:
    """``tar czf target -C folder .`` the way SageMaker packs model.tar.gz (members at the top level)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz", compresslevel=1) as tar:
        for item in sorted(Path(folder).iterdir()):
            tar.add(item, arcname=item.name)


def read_json_member(tar_bytes: bytes, member: str) -> dict:
    """Read one JSON file out of a .tar.gz in memory (JSON only: safe to read from any tarball), within
    the size caps of ``churn_core.storage.unpack`` (a 1.5 GiB schema.json is refused, not read)."""
    from churn_core.storage.unpack import read_json_member as capped

    return capped(tar_bytes, member)
