"""The local batch transform job: one detached process per job, the way SageMaker runs a transform.

``python -m churn_core.backends.local.transform_driver --home H --bucket B --transform NAME``

It reads the input's header (a file whose columns do not fit the model fails the job, naming
them), checks the model artifact's SHA-256 and loads it with the model's own ``model_fn``, cuts the
file into chunks of whole lines, and hands the chunks to worker processes forked from it (they
share the loaded model). Each worker scores its chunk with ``entry/table_scoring.py`` and writes a
part file; the driver joins the parts, in input order, into ``results.csv`` and ``errors.csv`` in the
bucket and records the counts. Progress (lines done / total) goes to the catalog twice a second.

Memory stays bounded whatever the file's size: a worker holds one chunk at a time, nothing
reads the whole file into memory, and a line over ``MAX_LINE_BYTES`` (1 MB) is never read: it is set
aside as a line error (a file without newlines, or whose lines end with a bare CR, included). A
worker that dies (``kill -9``) is replaced and its chunk scored again; a chunk that kills its worker
twice fails the job with the reason. A line never fails its chunk (``score_lines`` scores it or sets
it aside with its reason); a chunk whose scoring still raises (a bug) fails the job at once naming the
exception, its traceback in the log. SIGTERM (Stop) ends the workers and records ``Stopped``.
Everything the job knows is in the catalog, so the dashboard can
restart at any time.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import shutil
import signal
import sys
import time
from collections import deque
from multiprocessing.connection import Connection, Pipe, wait
from pathlib import Path

from churn_core.catalog import local_records, outcomes
from churn_core.catalog.database import Catalog, loads
from churn_core.errors import ChurnError, DiskError
from churn_core.storage.disk import disk_writes
from churn_core.paths import entry_module
from churn_core.storage.private_files import set_process_umask
from churn_core.processes.detached import describe_exit
from churn_core.storage.objects import LocalObjectStore
from churn_core.wording import plural
from churn_core.transform.rules import (
    HEAD_BYTES, expected_fields, long_line_problem, output_keys, plan_columns, read_header,
    result_columns, whole_line_blocks,
)

CHUNK_MAX_BYTES = 4 << 20
CHUNK_MIN_BYTES = 256 << 10
PROGRESS_SECONDS = 0.5
MAX_TRIES_PER_CHUNK = 2
FAILED = "failed"  # a worker's answer for a chunk whose scoring raised: (index, FAILED, "Type: message", 0)


def transform_dir(home: Path, name: str) -> Path:
    return Path(home) / "transforms" / name


class JobFailed(Exception):
    """The job cannot go on; the message is its failure reason."""


def plan_chunks(path: Path, start: int, workers: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """Whole-line chunks of the file after its header: (offset, length, first line number, too long), and the
    line count. A line over ``MAX_LINE_BYTES`` is a chunk of its own that is never read: ``too long`` is its
    length (0 for a chunk of lines to score), and its worker sets it aside with the reason.

    Chunk size: a quarter of a worker's share, between 256 KB and 4 MB (many chunks keep the workers
    evenly busy; each is small enough to bound memory)."""
    size = path.stat().st_size
    target = max(CHUNK_MIN_BYTES, min(CHUNK_MAX_BYTES, (size - start) // max(1, workers * 4)))
    chunks, lines = [], 0
    for offset, data, first, too_long in whole_line_blocks(path, start, target):
        chunks.append((offset, len(data), first, too_long))
        lines = first - 1 if too_long else first - 2 + data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return chunks, lines


class Driver:
    def __init__(self, home: Path, bucket: str, name: str):
        self.home = Path(home)
        self.catalog = Catalog(self.home / "churn.db")
        self.store = LocalObjectStore(self.home, bucket)
        self.name = name
        self.folder = transform_dir(self.home, name)
        self.parts = self.folder / "parts"
        self.stopping = False
        self.workers: dict[int, tuple[int, Connection]] = {}  # slot -> (pid, connection)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def on_sigterm(self, *_: object) -> None:
        self.stopping = True

    def job(self) -> dict:
        return local_records.transform(self.catalog, self.name) or {}

    # ---- the job -------------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        job = self.job()
        if job.get("status") != "InProgress":
            return 0
        self.catalog.update("transforms", self.name, started_at=time.time(), updated_at=time.time())
        shutil.rmtree(self.parts, ignore_errors=True)
        try:
            with disk_writes("create the job's working folder", self.folder):
                self.parts.mkdir(parents=True)
            started = time.monotonic()
            plan = self.prepare(job)
            self.log(f"{plan['lines']:,} lines in {len(plan['chunks'])} chunks on {plural(plan['workers'], 'worker')} "
                     f"(model loaded and file planned in {time.monotonic() - started:.2f} s)")
            started = time.monotonic()
            counts = self.score(plan)
            if counts is None:
                self.finish_stopped()
                return 0
            self.log(f"scored in {time.monotonic() - started:.2f} s")
            started = time.monotonic()
            self.complete(plan, *counts)
            self.log(f"results written in {time.monotonic() - started:.2f} s")
            return 0
        except JobFailed as exc:
            self.fail(str(exc))
            return 1
        except ChurnError as exc:  # TransformInputError; a DiskError: the disk's own message (free space...)
            self.fail(str(exc))
            return 1
        except Exception as exc:  # a bug: a clear failure, never a hang
            import traceback

            traceback.print_exc()
            self.fail(f"the transform failed unexpectedly: {type(exc).__name__}: {exc}")
            return 1
        finally:
            self.stop_workers()
            shutil.rmtree(self.parts, ignore_errors=True)
            shutil.rmtree(self.folder / "model", ignore_errors=True)

    def prepare(self, job: dict) -> dict:
        model_row = local_records.model(self.catalog, job["model"])
        if model_row is None:
            raise JobFailed(f"the model {job['model']} was deleted before the job started")
        source = self.store.path(job["input_key"])
        if not source.is_file():
            raise JobFailed(f"the input {job['input_key']} is missing from the bucket {self.store.root}")
        model = self.load_model(model_row)
        with open(source, "rb") as fh:
            header = read_header(fh.read(HEAD_BYTES), model["compiled"]["features"])
        keep = plan_columns(header, model["schema"], loads(job["keep_columns_json"], None))
        workers = max(1, int(job["instance_count"] or 1))
        chunks, lines = plan_chunks(source, header.size, workers)
        self.catalog.update("transforms", self.name, rows_in=lines, updated_at=time.time())
        return {"source": source, "header": header, "keep": keep, "model": model, "chunks": chunks, "lines": lines,
                "workers": max(1, min(workers, len(chunks))), "threshold": float(job["threshold"]),
                "reasons": self.check_reasons(job, model)}

    def check_reasons(self, job: dict, model: dict) -> bool:
        """Whether lines get their top reason; a model that cannot explain fails the job at once, saying so."""
        if not job.get("reasons"):
            return False
        try:
            entry_module("explanations").explainer_for(model)
        except Exception as exc:  # InvalidInput: the model cannot explain, with the cause
            raise JobFailed(f"{exc} Start the job again without top reasons.") from None
        return True

    def load_model(self, model_row: dict) -> dict:
        """The artifact read once within the caps and checked against its recorded SHA-256; only those
        bytes are unpacked (a file swapped after the check is never loaded), then the model's own model_fn."""
        from churn_core.paths import ENTRY
        from churn_core.backends.local.endpoint.server import ServingError, load_entry
        from churn_core.storage.unpack import extract, load_verified

        if not self.store.path(model_row["artifact_key"]).is_file():
            raise JobFailed(f"the model artifact {model_row['artifact_key']} is missing; retrain the model")
        try:
            data = load_verified(self.store, model_row["artifact_key"], model_row["artifact_sha256"])
            extract(data, self.folder / "model")
            del data
            entry = load_entry(ENTRY)
        except (ServingError, ChurnError) as exc:  # refused, or a DiskError (full disk: free space, start again)
            raise JobFailed(str(exc)) from None
        entry_module("table_scoring")  # imported once here, not in every worker
        return entry.model_fn(str(self.folder / "model"))

    # ---- the workers ---------------------------------------------------------------------------------
    def start_worker(self, slot: int, plan: dict) -> None:
        parent, child = Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            parent.close()
            from churn_core.processes.child import run_to_exit

            run_to_exit(lambda: worker_loop(child, slot, self.name, plan, self.parts))
        child.close()
        self.workers[slot] = (pid, parent)

    def stop_workers(self) -> None:
        for pid, conn in self.workers.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            conn.close()
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.workers.clear()

    def score(self, plan: dict) -> tuple[int, int] | None:
        """Hand the chunks out until every one is done; (scored, failed) lines, or None when stopped."""
        chunks = plan["chunks"]
        pending = deque(range(len(chunks)))
        busy: dict[int, int] = {}  # slot -> chunk
        tries = [0] * len(chunks)
        done_lines = scored = failed = 0
        finished = 0
        restarts = 0
        last_progress = 0.0

        def give(slot: int) -> None:
            conn = self.workers[slot][1]
            if pending:
                index = pending.popleft()
                busy[slot] = index
                tries[index] += 1
                conn.send((index, *chunks[index]))
            else:
                busy.pop(slot, None)
                conn.send(None)

        for slot in range(plan["workers"]):
            self.start_worker(slot, plan)
            give(slot)
        while finished < len(chunks):
            if self.stopping:
                return None
            by_conn = {conn: slot for slot, (_, conn) in self.workers.items() if slot in busy}
            for conn in wait(list(by_conn), timeout=PROGRESS_SECONDS):
                slot = by_conn[conn]
                try:
                    answer = conn.recv()
                    if answer[0] == "disk":  # a part could not be written: the disk's message, not a dead worker
                        raise JobFailed(answer[1])
                    index, n_scored, n_failed, n_lines = answer
                except (EOFError, OSError):
                    restarts = self.replace_dead(slot, busy.pop(slot), chunks, tries, pending, restarts, plan)
                    if slot in self.workers:
                        give(slot)
                    continue
                if n_scored == FAILED:  # n_failed is the exception, "Type: message"
                    raise JobFailed(f"scoring lines {chunks[index][2]:,}+ of the input (chunk {index + 1} of "
                                    f"{len(chunks)}) raised {n_failed}. The job log has the traceback.")
                finished += 1
                done_lines += n_lines
                scored += n_scored
                failed += n_failed
                give(slot)
            if time.monotonic() - last_progress >= PROGRESS_SECONDS or finished == len(chunks):
                last_progress = time.monotonic()
                self.catalog.update("transforms", self.name, rows_done=done_lines, rows_scored=scored,
                                    rows_failed=failed, updated_at=time.time())
        return scored, failed

    def replace_dead(self, slot, index, chunks, tries, pending, restarts, plan) -> int:
        pid, conn = self.workers.pop(slot)
        conn.close()
        try:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except ChildProcessError:
            code = None
        first = chunks[index][2]
        where = f"lines {first:,}+ of the input (chunk {index + 1} of {len(chunks)})"
        if self.stopping:
            return restarts
        self.log(f"worker {pid} ({describe_exit(code)}) died while scoring {where}")
        if tries[index] >= MAX_TRIES_PER_CHUNK:
            raise JobFailed(f"a worker process died twice while scoring {where} (last: {describe_exit(code)}). "
                            "Check the machine's free memory and the job log, then start the job again.")
        if restarts >= 2 * plan["workers"]:
            raise JobFailed(f"worker processes died {restarts + 1} times (last: {describe_exit(code)} while scoring "
                            f"{where}). Check the machine's free memory and the job log, then start the job again.")
        pending.appendleft(index)
        self.start_worker(slot, plan)
        self.log(f"started worker {self.workers[slot][0]} in its place; the chunk is scored again")
        return restarts + 1

    # ---- the end -------------------------------------------------------------------------------------
    def complete(self, plan: dict, scored: int, failed: int) -> None:
        keep = plan["keep"]
        results_key, errors_key = output_keys(self.name)
        results, errors = self.folder / "results.csv", self.folder / "errors.csv"
        with disk_writes("write the job's results", self.folder):
            first_problems = self.join_parts(plan, keep, results, errors)
        self.store.put_file(results_key, results)
        self.store.put_file(errors_key, errors)
        results.unlink(missing_ok=True)
        errors.unlink(missing_ok=True)

        now = time.time()
        rows = scored + failed
        fields = {"rows_in": rows, "rows_done": plan["lines"], "rows_scored": scored, "rows_failed": failed,
                  "output_key": results_key, "errors_key": errors_key, "ended_at": now, "updated_at": now,
                  "exit_code": 0}
        if rows and not scored:
            shown = "; ".join(first_problems)
            reason = (f"none of the {rows:,} lines could be scored (first problems: {shown}). "
                      "Every line is listed in errors.csv.")
            self.fail(reason, fields)
            return
        if not rows:
            self.fail("the file has a header but no lines to score", fields)
            return
        local_records.end_if(self.catalog, "transform", self.name, "Completed", was=("InProgress",),
                             event=f"Completed: {scored:,} scored, {failed:,} failed", **fields)
        self.log(f"Completed: {scored:,} lines scored, {failed:,} could not be scored")

    def join_parts(self, plan: dict, keep: list[str], results: Path, errors: Path) -> list[str]:
        """The workers' parts joined in input order into ``results`` and ``errors``; the first three problems."""
        with open(results, "wb") as out:
            out.write((",".join(_csv_field(c) for c in result_columns(keep, plan["reasons"])) + "\n").encode("utf-8"))
            for index in range(len(plan["chunks"])):
                with open(self.parts / f"{index:06d}.csv", "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        first_problems: list[str] = []
        with open(errors, "wb") as out:
            out.write(b"line,problem\n")
            for index in range(len(plan["chunks"])):
                with open(self.parts / f"{index:06d}.err", "rb") as part:
                    if len(first_problems) < 3:
                        rows = csv.reader(io.StringIO(part.read().decode("utf-8")))
                        wanted = 3 - len(first_problems)
                        first_problems.extend(f"line {n}: {p}" for n, p in itertools.islice(rows, wanted))
                        part.seek(0)
                    shutil.copyfileobj(part, out, 1 << 20)
        return first_problems

    def fail(self, reason: str, fields: dict | None = None) -> None:
        self.log(f"FAILED: {reason}")
        fields = {**(fields or {}), "ended_at": time.time(), "updated_at": time.time()}
        outcomes.finish(self.catalog, "transform", self.name, "Failed", reason[:1].upper() + reason[1:], once=True,
                        event=f"Failed: {reason}", **fields)

    def finish_stopped(self) -> None:
        self.log("Stopped by request")
        outcomes.finish(self.catalog, "transform", self.name, "Stopped", once=True, event="Stopped",
                        ended_at=time.time(), updated_at=time.time())


def _csv_field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n\r') else text


def write_part(parts: Path, index: int, scored) -> None:
    """A chunk's scored lines and problems, each file renamed into place once whole."""
    tmp = parts / f".{index:06d}.csv"
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        scored.to_csv(out)
    with open(parts / f".{index:06d}.err", "w", encoding="utf-8", newline="") as out:
        for line, problem in scored.problems:
            out.write(f"{line},{_csv_field(problem)}\n")
    os.replace(parts / f".{index:06d}.err", parts / f"{index:06d}.err")
    os.replace(tmp, parts / f"{index:06d}.csv")


def worker_loop(conn: Connection, slot: int, name: str, plan: dict, parts: Path) -> int:
    """One worker: score the chunks the driver sends until it sends None (or goes away)."""
    from setproctitle import setproctitle

    table_scoring = entry_module("table_scoring")

    setproctitle(f"churn_core.backends.local.transform_driver worker {slot} --transform {name}")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    expected = expected_fields(plan["header"])
    with open(plan["source"], "rb") as fh:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):  # the driver is gone
                return 0
            if task is None:
                return 0
            index = task[0]
            try:
                conn.send(score_chunk(fh, task, plan, parts, table_scoring, expected))
            except DiskError as exc:  # a part could not be written (disk_writes): the disk's message
                conn.send(("disk", str(exc)))
                return 1
            except Exception as exc:  # reported as itself (type and message), never as a worker that died
                import traceback

                traceback.print_exc()
                sys.stderr.flush()
                conn.send((index, FAILED, f"{type(exc).__name__}: {exc}"[:2000], 0))


def score_chunk(fh, task: tuple, plan: dict, parts: Path, table_scoring, expected: str) -> tuple:
    """Score one chunk into its part files; (index, scored, set aside, lines) for the driver."""
    index, offset, length, first_line, too_long = task
    header, keep = plan["header"], plan["keep"]
    if too_long:  # one line over the limit: set aside unread
        with disk_writes("write the scored lines", parts):
            (parts / f"{index:06d}.csv").write_bytes(b"")
            (parts / f"{index:06d}.err").write_text(f"{first_line},{_csv_field(long_line_problem(too_long))}\n",
                                                    encoding="utf-8")
        return index, 0, 1, 1
    fh.seek(offset)
    data = fh.read(length)
    scored = table_scoring.score_lines(data, header.names, plan["model"], plan["threshold"], keep,
                                       reasons=plan["reasons"],
                                       first_line=first_line, sep=header.sep, expected=expected)
    with disk_writes("write the scored lines", parts):
        write_part(parts, index, scored)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return index, len(scored), len(scored.problems), lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--transform", required=True)
    opts = parser.parse_args(argv)
    set_process_umask()  # its results, parts and log are private, like every process the product starts
    return Driver(Path(opts.home), opts.bucket, opts.transform).run()


if __name__ == "__main__":
    sys.exit(main())
