"""The training code package: ``entry/`` as SageMaker script mode takes it (``sourcedir.tar.gz``), and its key."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from churn_core.errors import BackendError
from churn_core.paths import ENTRY_DIR


def package_source(folder: Path = ENTRY_DIR) -> bytes:
    """``sourcedir.tar.gz`` of ``entry/`` (members at the top level, no caches), byte-for-byte reproducible."""
    if not (folder / "train.py").is_file():
        raise BackendError(f"The training script {folder / 'train.py'} is missing; restore entry/ and try again.")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder)
                if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo") \
                        or any(part.startswith(".") for part in rel.parts):
                    continue
                info = tarfile.TarInfo(str(rel))
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def code_key(job_name: str) -> str:
    """Where a job's (or tuning job's) code package lives in the bucket; a deployed model reuses it."""
    return f"code/{job_name}/sourcedir.tar.gz"
