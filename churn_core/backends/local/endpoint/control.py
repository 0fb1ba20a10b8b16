"""What a local endpoint serves, and how its workers follow a change without dropping a request.

The desired state of an endpoint is one JSON file, ``<workdir>/control.json``: a generation
number, the production variants (model artifact, SHA-256, weight, version label, threshold) and
the data-capture share. The supervisor writes it before it starts the server; an update, a
weight change or a capture change writes a new generation. Each worker watches the file and,
when it changes, loads what is new off the request path (models already verified and unpacked
into ``<workdir>/models/<sha256>/`` by the probe that checked them) and swaps its routing table in
one reference store: a request in flight finishes on the table it started with, the next one
uses the new table, and no connection is closed. The worker then records the generation it
serves in ``<workdir>/generations/<pid>``, so an update knows when every worker has switched.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from churn_core.storage.disk import disk_writes
from churn_core.errors import BackendError
from churn_core.monitoring.capture_bounds import bounds_of

CONTROL_FILE = "control.json"
WATCH_INTERVAL_S = 0.05


@dataclass(frozen=True)
class VariantSpec:
    name: str
    artifact: str  # path of model.tar.gz
    sha256: str
    weight: float = 1.0
    model: str = ""  # the trained model (training job) it comes from
    version: str = ""  # "group v3" when it is a registry version
    threshold: Optional[float] = None


@dataclass(frozen=True)
class Control:
    generation: int
    variants: tuple
    capture_percent: float = 0.0
    capture_root: str = ""  # the folder under which capture/<endpoint>/… is written (the local bucket)
    endpoint: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["variants"] = [asdict(v) for v in self.variants]
        return json.dumps(data, indent=1)


def control_path(workdir: Path) -> Path:
    return Path(workdir) / CONTROL_FILE


def models_dir(workdir: Path) -> Path:
    return Path(workdir) / "models"


def read_control(workdir: Path) -> Control:
    data = json.loads(control_path(workdir).read_text())
    variants = tuple(VariantSpec(**v) for v in data.pop("variants"))
    return Control(variants=variants, **data)


def write_control(workdir: Path, control: Control) -> None:
    """Atomically (a reader sees the old file or the new one, never half of one)."""
    target = control_path(workdir)
    tmp = target.with_name(f".{CONTROL_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with disk_writes("write the endpoint's control file", workdir):  # a full disk says so
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(control.to_json())
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generations(workdir: Path, pids: list[int]) -> dict[int, str]:
    """What each worker reports serving: ``"<generation>"`` or ``"error <generation>: <message>"``."""
    out = {}
    for pid in pids:
        try:
            out[pid] = (Path(workdir) / "generations" / str(pid)).read_text().strip()
        except OSError:
            out[pid] = ""
    return out


# --------------------------------------------------------------------------- inside a worker


class LoadedVariant:
    """One production variant as a worker serves it (immutable once built)."""

    __slots__ = ("spec", "model")

    def __init__(self, spec: VariantSpec, model: dict) -> None:
        self.spec = spec
        self.model = model

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def weight(self) -> float:
        return self.spec.weight

    @property
    def model_name(self) -> str:
        return self.spec.model


class RoutingTable:
    """The variants of one generation and their cumulative weights."""

    __slots__ = ("generation", "variants", "cumulative", "capture_percent")

    def __init__(self, generation: int, variants: list[LoadedVariant], capture_percent: float) -> None:
        self.generation = generation
        self.variants = {v.name: v for v in variants}
        live = [v for v in variants if v.weight > 0] or variants
        total = float(sum(v.weight for v in live)) or 1.0
        acc, self.cumulative = 0.0, []
        for v in live:
            acc += (v.weight / total) if total else 1.0 / len(live)
            self.cumulative.append((acc, v))
        self.capture_percent = capture_percent

    def pick(self, target: Optional[str] = None) -> Optional[LoadedVariant]:
        """A variant by weight, or the one a ``TargetVariant`` header names (None: no such variant)."""
        if target:
            return self.variants.get(target)
        r = random.random()
        for acc, variant in self.cumulative:
            if r < acc:
                return variant
        return self.cumulative[-1][1]


class LiveEndpoint:
    """The routing table a worker serves from, kept in step with the control file."""

    def __init__(self, workdir: Path, load: Callable[[VariantSpec], dict], on_swap: Optional[Callable] = None):
        self.workdir = Path(workdir)
        self.load = load
        self.on_swap = on_swap
        self.table: Optional[RoutingTable] = None
        self.mtime: Optional[int] = None
        self._thread_pid: Optional[int] = None

    def refresh(self) -> None:
        """Read the control file if it changed; load what is new; swap; report the generation."""
        path = control_path(self.workdir)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self.mtime:
            return
        self.mtime = mtime
        try:
            control = read_control(self.workdir)
        except (OSError, ValueError, TypeError):
            return  # a file being replaced: the next look sees the whole one
        old = self.table.variants if self.table else {}
        try:
            variants = []
            for spec in control.variants:
                kept = old.get(spec.name)
                if kept is not None and kept.spec.sha256 == spec.sha256 and kept.spec.threshold == spec.threshold:
                    variants.append(LoadedVariant(spec, kept.model))
                else:
                    variants.append(LoadedVariant(spec, self.load(spec)))
        except Exception as err:  # the old table keeps serving; the update reads why
            self._report(f"error {control.generation}: {type(err).__name__}: {err}")
            return
        self.table = RoutingTable(control.generation, variants, control.capture_percent)
        self._report(str(control.generation))
        if self.on_swap is not None:
            self.on_swap(self.table)

    def _report(self, text: str) -> None:
        folder = self.workdir / "generations"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / str(os.getpid())
            tmp = folder / f".{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, target)
        except OSError:
            pass

    def start_watching(self) -> None:
        """A daemon thread per worker process (threads do not survive fork: started after it)."""
        if self._thread_pid == os.getpid():
            return
        self._thread_pid = os.getpid()
        self.mtime = None  # report this worker's generation at once

        def loop() -> None:
            while True:
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - never let the watcher die
                    pass
                time.sleep(WATCH_INTERVAL_S)

        threading.Thread(target=loop, name="control-watcher", daemon=True).start()


def wait_for_generation(workdir: Path, generation: int, pids: Callable[[], list[int]], timeout: float = 30.0) -> str:
    """Block until every worker serves ``generation``; "" when they do, else what went wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = pids()
        reports = generations(workdir, current)
        errors = [r for r in reports.values() if r.startswith(f"error {generation}:")]
        if errors:
            return errors[0].split(":", 1)[1].strip()
        if current and all(r == str(generation) for r in reports.values()):
            return ""
        time.sleep(0.02)
    return f"the model server's workers did not switch to the new models within {timeout:.0f} s"


def control_for(store, endpoint: dict, variants: list[dict], generation: int):
    """The local server's control file for a configuration's variants (artifacts in the local bucket)."""
    specs = tuple(
        VariantSpec(name=v["variant"], artifact=str(store.path(v["deployed"]["artifact_key"])),
                    sha256=v["deployed"]["artifact_sha256"], weight=float(v["weight"]), model=v["deployed"]["model"],
                    version=f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"] else "",
                    threshold=v["deployed"]["threshold"])
        for v in variants
    )
    return Control(generation=int(generation), variants=specs,
                   capture_percent=float(endpoint.get("capture_percent") or 0), capture_root=str(store.root),
                   endpoint=endpoint["name"], extra={"capture_bounds": bounds_of(endpoint).to_dict()})


# ---- the endpoint folder's small files, written only into a folder that still exists


def write_in_folder(path: Path, text: str) -> None:
    """Write a small private file into a folder that must already exist (never made again: a folder removed
    by a delete of its endpoint stays removed); BackendError when it is gone."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except OSError as exc:
        raise BackendError(f"{path.parent} cannot be written ({exc}); the endpoint may have been deleted "
                           "meanwhile") from None


def note_variants(folder: Path, endpoint: dict, variants: list[dict], config: str | None = None) -> None:
    """Keep endpoint.json (what a catalog rebuilt from disk knows of the endpoint) in step with what its
    server now serves: the configuration, its variants and weights (best effort: the catalog is the record)."""
    path = Path(folder) / "endpoint.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    top = max(variants, key=lambda v: v["weight"])["deployed"]
    if config is not None:
        manifest.update(config=config, model=top["model"], deployed_model=top["name"],
                        artifact_key=top["artifact_key"], artifact_sha256=top["artifact_sha256"],
                        generation=endpoint.get("generation") or manifest.get("generation") or 1)
    manifest["variants"] = [{"variant": v["variant"], "weight": float(v["weight"]), "deployed": dict(v["deployed"])}
                            for v in variants]
    try:
        write_in_folder(path, json.dumps(manifest, indent=1))
    except BackendError:
        pass  # deleted meanwhile
