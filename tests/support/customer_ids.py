"""Customer IDs that can be traced: a generated file whose ``customerID`` values are ``NNNN-XXXXX`` (digits,
a dash, five capitals), and a search for any of them in every byte the product keeps, also inside archives
(.tar.gz, .gz, .zip), pickles/joblib files and Parquet files, on disk or in a (moto) bucket."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd


def with_traceable_ids(csv: bytes, seed: int = 8) -> tuple[bytes, list[str]]:
    """The CSV with its ``customerID`` column replaced by unique ``NNNN-XXXXX`` values; (csv, ids)."""
    frame = pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < len(frame):
        value = f"{rng.integers(1000, 10000)}-{''.join(chr(65 + int(c)) for c in rng.integers(0, 26, 5))}"
        if value not in seen:
            seen.add(value)
            ids.append(value)
    frame["customerID"] = ids
    return frame.to_csv(index=False).encode(), ids


def _inner(name: str, data: bytes) -> Iterable[tuple[str, bytes]]:
    """The bytes of a file and, for containers, of what they hold (recursively)."""
    yield name, data
    lower = name.lower()
    try:
        if lower.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        yield from _inner(f"{name}!{member.name}", tar.extractfile(member).read())
        elif lower.endswith(".gz"):
            yield from _inner(f"{name}!gunzip", gzip.decompress(data))
        elif lower.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield from _inner(f"{name}!{member}", archive.read(member))
        elif lower.endswith(".parquet"):
            yield f"{name}!rows", pd.read_parquet(io.BytesIO(data)).to_csv(index=False).encode()
        elif lower.endswith((".joblib", ".pkl", ".pickle")):
            import pickle

            import joblib

            yield f"{name}!unpickled", pickle.dumps(joblib.load(io.BytesIO(data)))
    except Exception as exc:  # noqa: BLE001 - an unreadable container is reported, never skipped silently
        raise AssertionError(f"could not look inside {name}: {exc}") from exc


def holding_ids(files: Iterable[tuple[str, bytes]], ids: list[str]) -> dict[str, list[str]]:
    """name → the IDs found in it (inner members named ``outer!inner``)."""
    wanted = [i.encode() for i in ids]
    found: dict[str, list[str]] = {}
    for name, data in files:
        for inner, content in _inner(name, data):
            hits = [w.decode() for w in wanted if w in content]
            if hits:
                found[inner] = hits[:3]
    return found


def files_under(root: Path) -> Iterable[tuple[str, bytes]]:
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield str(path), path.read_bytes()


def objects_in(s3, bucket: str) -> Iterable[tuple[str, bytes]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            yield obj["Key"], s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
