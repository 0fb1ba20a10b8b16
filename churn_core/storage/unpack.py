"""Model artifacts are read once, verified, and unpacked within stated size caps.

Three rules for every ``model.tar.gz`` / ``output.tar.gz`` the product checks:

1. **One read.** The artifact's bytes are read once into memory (one ``open``, size checked on the
   same descriptor) and the SHA-256 is computed over exactly those bytes; whatever is extracted or
   parsed afterwards comes from the same bytes, never from the path again. A file swapped after the
   check is never used (the check-then-use race of opening the path twice).
2. **Safe members only.** Regular files and folders with relative paths inside the destination; an
   absolute path, ``..``, a link, a device or a sparse member refuses the whole artifact before
   anything is written.
3. **Size caps, checked before writing** (:class:`ArtifactLimits`): the artifact itself, each
   member, the total unpacked size (also relative to the artifact's size: a model packs 3–6× with
   gzip, a decompression bomb 1000×), the number of members, and each JSON member that is read into
   memory. Decompression itself is capped, so a bomb hidden in tar headers stops at the cap too.

The caps are settings (environment): ``CHURN_MAX_MODEL_MB`` (4096: the largest model, packed or
unpacked), ``CHURN_MAX_UNPACK_RATIO`` (50), ``CHURN_MAX_JSON_MB`` (64) and ``CHURN_MAX_MODEL_MEMBERS``
(1000). An artifact that breaks a rule raises :class:`ArtifactRefused` (a ``ValidationError``) saying
which rule and what to do. A write that fails while unpacking (full disk, quota, read-only, permissions)
is a ``DiskError`` (``storage/disk.py``), never taken for a corrupt artifact.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from churn_core.errors import BackendError, ValidationError
from churn_core.storage.disk import disk_error, is_disk_error

MB = 1024 * 1024
RATIO_FLOOR_BYTES = 64 * MB  # the ratio cap never refuses an artifact unpacking to less than this
_HEADER_SLACK = 1 * MB  # tar headers and padding on top of the members' own sizes


class ArtifactRefused(ValidationError):
    """The artifact breaks a rule (integrity, unsafe member, size cap); it is not used at all."""


def _env_int(env: dict, key: str, default: int) -> int:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{key}={raw!r} is not a whole number. Set it to an integer or unset it.") from None
    if value <= 0:
        raise ValidationError(f"{key}={raw!r} must be a positive whole number.")
    return value


@dataclass(frozen=True)
class ArtifactLimits:
    max_model_bytes: int = 4096 * MB  # the artifact file, one member, and all members together
    max_ratio: int = 50  # unpacked total at most this many times the artifact's size (floor: 64 MiB)
    max_json_bytes: int = 64 * MB  # schema.json, metrics.json, evaluation.json: read into memory
    max_members: int = 1000  # a model has four

    @classmethod
    def from_env(cls, env: dict | None = None) -> "ArtifactLimits":
        env = dict(os.environ if env is None else env)
        return cls(
            max_model_bytes=_env_int(env, "CHURN_MAX_MODEL_MB", 4096) * MB,
            max_ratio=_env_int(env, "CHURN_MAX_UNPACK_RATIO", 50),
            max_json_bytes=_env_int(env, "CHURN_MAX_JSON_MB", 64) * MB,
            max_members=_env_int(env, "CHURN_MAX_MODEL_MEMBERS", 1000),
        )

    def unpacked_cap(self, packed_bytes: int) -> int:
        return min(self.max_model_bytes, max(RATIO_FLOOR_BYTES, self.max_ratio * packed_bytes))

    def describe(self) -> str:
        return (f"at most {_size(self.max_model_bytes)} per model, {self.max_ratio}× its packed size unpacked "
                f"(at least {_size(RATIO_FLOOR_BYTES)}), {_size(self.max_json_bytes)} per JSON file, "
                f"{self.max_members} files")


def _size(n: int) -> str:
    if n >= 1024 * MB:
        return f"{n / (1024 * MB):g} GiB"
    if n >= MB:
        return f"{n / MB:g} MiB"
    return f"{n:,} bytes"


_SETTINGS_HINT = "(caps: CHURN_MAX_MODEL_MB, CHURN_MAX_UNPACK_RATIO, CHURN_MAX_JSON_MB, CHURN_MAX_MODEL_MEMBERS)"


# ----------------------------------------------------------------------------- one read, verified


def read_file_once(path: Path, limits: ArtifactLimits | None = None, what: str = "model artifact") -> bytes:
    """The whole file, read through one descriptor; refused before reading if over the cap."""
    limits = limits or ArtifactLimits.from_env()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_model_bytes:
            raise ArtifactRefused(
                f"The {what} {path} is {_size(size)}, over the cap of {_size(limits.max_model_bytes)} for a model "
                f"{_SETTINGS_HINT}. It was not read; retrain the model, or raise CHURN_MAX_MODEL_MB if it is yours."
            )
        data = fh.read(limits.max_model_bytes + 1)
    if len(data) > limits.max_model_bytes:
        raise ArtifactRefused(f"The {what} {path} grew past {_size(limits.max_model_bytes)} while it was read.")
    return data


def verify(data: bytes, expected: str, what: str = "model artifact") -> bytes:
    """``data`` itself when its SHA-256 is the one recorded; ArtifactRefused otherwise."""
    wanted = (expected or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", wanted):
        raise ArtifactRefused(
            f"No valid SHA-256 is recorded for the {what} (got {expected!r}), so it cannot be checked and will "
            "not be loaded. Retrain the model."
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != wanted:
        raise ArtifactRefused(
            f"The {what} failed its integrity check (SHA-256 {actual[:12]}… but {wanted[:12]}… was recorded "
            "when it was produced). It was changed or corrupted after training, so it will not be loaded. "
            "Retrain the model or restore the original file."
        )
    return data


def read_verified(path: Path, expected: str, what: str = "model artifact",
                  limits: ArtifactLimits | None = None) -> bytes:
    """Read ``path`` once and return its bytes if their SHA-256 is ``expected``: use only these bytes."""
    return verify(read_file_once(path, limits, what), expected, what)


def load_verified(store, key: str, expected: str, what: str = "model artifact",
                  limits: ArtifactLimits | None = None) -> bytes:
    """An object of the store (local folder or S3), read once within the cap and verified."""
    limits = limits or ArtifactLimits.from_env()
    return verify(store.get_bytes(key, max_bytes=limits.max_model_bytes), expected, what)


# ----------------------------------------------------------------------------- capped decompression


class _CappedStream(io.RawIOBase):
    """The decompressed tar stream, refusing to read (or seek) past ``cap`` bytes."""

    def __init__(self, raw: io.BufferedIOBase, cap: int, what: str):
        super().__init__()
        self.raw, self.cap, self.what = raw, cap, what

    def _refuse(self) -> None:
        raise ArtifactRefused(
            f"The {self.what} unpacks to more than {_size(self.cap)} {_SETTINGS_HINT}; it was refused before "
            "anything was written. A model this size is not one this product trained: retrain it."
        )

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset > self.cap:
            self._refuse()
        return self.raw.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        left = self.cap - self.raw.tell()
        if size is None or size < 0 or size > left:
            data = self.raw.read(left + 1)
            if len(data) > left:
                self._refuse()
            return data
        return self.raw.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _open_tar(data: bytes, cap: int, what: str) -> tarfile.TarFile:
    raw: io.BufferedIOBase = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    return tarfile.open(fileobj=_CappedStream(raw, cap, what), mode="r:")


def _unreadable(what: str, err: BaseException) -> ArtifactRefused:
    return ArtifactRefused(f"The {what} is not a readable .tar.gz ({err}); retrain the model.")


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, gzip.BadGzipFile)


def _unsafe(name: str, why: str, what: str) -> ArtifactRefused:
    return ArtifactRefused(f"unsafe path {name!r} in the {what} ({why}); it will not be extracted. Retrain the model.")


def check_member(info: tarfile.TarInfo, what: str = "model artifact") -> PurePosixPath:
    """The member's safe relative path, or ArtifactRefused (absolute, ``..``, drive letters, links, devices)."""
    name = info.name
    if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise _unsafe(name, "an absolute path", what)
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise _unsafe(name, "it climbs out with '..'", what)
    if info.issym() or info.islnk():
        raise ArtifactRefused(f"the {what} contains a link ({name!r} → {info.linkname!r}); refusing to extract it. "
                              "Retrain the model.")
    if info.issparse() or not (info.isreg() or info.isdir()):
        raise ArtifactRefused(f"the {what} contains a special file ({name!r}); refusing to extract it. "
                              "Retrain the model.")
    clean = PurePosixPath(*[p for p in parts if p not in ("", ".")]) if parts else PurePosixPath(".")
    return clean


def checked_members(tar: tarfile.TarFile, limits: ArtifactLimits, packed: int,
                    what: str) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Every member checked (paths, kinds, sizes) from its header, before any member's data is read."""
    cap = limits.unpacked_cap(packed)
    members: list[tuple[tarfile.TarInfo, PurePosixPath]] = []
    total = 0
    while True:
        info = tar.next()  # reads this header only: the data of an oversized member is never decompressed
        if info is None:
            break
        if len(members) >= limits.max_members:
            raise ArtifactRefused(f"The {what} has more than {limits.max_members} files {_SETTINGS_HINT}; "
                                  "a model has a handful. It was not extracted; retrain the model.")
        path = check_member(info, what)
        if info.isreg():
            if info.size > limits.max_model_bytes:
                raise ArtifactRefused(
                    f"{info.name!r} in the {what} is {_size(info.size)}, over the cap of "
                    f"{_size(limits.max_model_bytes)} for one file {_SETTINGS_HINT}. Nothing was extracted.")
            if path.suffix == ".json" and info.size > limits.max_json_bytes:
                raise ArtifactRefused(
                    f"{info.name!r} in the {what} is {_size(info.size)}, over the cap of "
                    f"{_size(limits.max_json_bytes)} for a JSON file {_SETTINGS_HINT}. Nothing was extracted.")
            total += info.size
            if total > cap:
                raise ArtifactRefused(
                    f"The {what} unpacks to more than {_size(cap)} ({_size(packed)} packed; caps "
                    f"{limits.describe()}) {_SETTINGS_HINT}. It was refused before anything was written; "
                    "retrain the model.")
        members.append((info, path))
    return members


def members_of(data: bytes, limits: ArtifactLimits | None = None,
               what: str = "model artifact") -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    limits = limits or ArtifactLimits.from_env()
    try:
        with _open_tar(data, limits.unpacked_cap(len(data)) + _HEADER_SLACK, what) as tar:
            return checked_members(tar, limits, len(data), what)
    except ArtifactRefused:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(what, err) from None


def extract(data: bytes, dest: Path, limits: ArtifactLimits | None = None, what: str = "model artifact") -> list[str]:
    """Unpack ``data`` (already verified) into the new folder ``dest``; the extracted file names.

    Every member is checked before anything is written; ``dest`` is removed first if it exists."""
    import shutil

    limits = limits or ArtifactLimits.from_env()
    dest = Path(dest)
    names: list[str] = []
    try:
        with _open_tar(data, limits.unpacked_cap(len(data)) + _HEADER_SLACK, what) as tar:
            members = checked_members(tar, limits, len(data), what)
            if dest.exists() or dest.is_symlink():
                shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
            dest.mkdir(mode=0o700)
            for info, path in members:
                target = dest.joinpath(*path.parts) if path.parts else dest
                if info.isdir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                source = tar.extractfile(info)
                if source is None:
                    raise _unreadable(what, OSError(f"cannot read {info.name!r}"))
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                with source, os.fdopen(os.open(target, flags, 0o600), "wb") as out:
                    left = info.size
                    while left > 0:
                        chunk = source.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        out.write(chunk)
                        left -= len(chunk)
                names.append(info.name)
    except ArtifactRefused:
        raise
    except _READ_ERRORS as err:
        if is_disk_error(err):  # the data is read from memory: an errno here is a write to the disk
            raise disk_error(err, f"unpack the {what} into {dest}", dest.parent) from None
        if isinstance(err, OSError) and err.errno is not None:  # the folder, not the archive
            raise BackendError(f"Could not unpack the {what} into {dest} ({err.strerror or err}). Check that "
                               "folder, then try again.") from None
        raise _unreadable(what, err) from None
    return names


def read_json_member(data: bytes, member: str, limits: ArtifactLimits | None = None,
                     what: str = "model artifact") -> dict:
    """One JSON file of a .tar.gz in memory, within the JSON cap (JSON only: safe from any tarball)."""
    limits = limits or ArtifactLimits.from_env()
    try:
        with _open_tar(data, limits.unpacked_cap(len(data)) + _HEADER_SLACK, what) as tar:
            for info, path in checked_members(tar, limits, len(data), what):
                if info.isreg() and str(path) == member:
                    handle = tar.extractfile(info)
                    if handle is not None:
                        with handle:
                            return json.loads(handle.read(limits.max_json_bytes + 1).decode("utf-8"))
    except ArtifactRefused:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(what, err) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactRefused(f"{member} in the {what} is not valid JSON ({err}); retrain the model.") from None
    raise ValidationError(f"{member} is missing from the artifact; retrain the model to produce a complete one.")
