"""The local training job: one detached process per job, the way SageMaker runs a training container.

``python -m churn_core.backends.local.job_driver --home H --bucket B --job NAME --max-concurrent N``

It waits for a free slot (jobs start in submit order), lays out the SageMaker folders, runs
``entry/train.py`` with the SM_* environment and the hyperparameters as options, packs
``model.tar.gz`` and ``output.tar.gz``, and records the result. Everything it knows goes to the
catalog, so the dashboard can restart at any time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from churn_core.storage.artifacts import make_tarball, sha256_bytes
from churn_core.backends.local import job_outcome
from churn_core.catalog import local_records
from churn_core.catalog.database import Catalog, dumps, loads
from churn_core.errors import ChurnError
from churn_core.training.hyperparameters import as_cli, for_container
from churn_core.paths import ENTRY
from churn_core.storage.private_files import set_process_umask
from churn_core.processes.detached import describe_exit, fork_script, tail, wait_child
from churn_core.storage.objects import LocalObjectStore

SLOT_POLL_SECONDS = 0.05


def job_dir(home: Path, name: str) -> Path:
    return Path(home) / "jobs" / name


def failure_reason(folder: Path, code: int | None) -> str:
    """The script's own ``ERROR:`` line (or its last traceback line), plus how the process ended."""
    failure_file = folder / "output" / "failure"
    message = failure_file.read_text(errors="replace").strip() if failure_file.exists() else ""
    if not message:
        lines = [line.strip() for line in tail(folder / "train.log", 60).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        message = errors[-1] if errors else (lines[-1] if lines else "")
    message = message.removeprefix("ERROR:").strip()
    ended = f"training script {describe_exit(code)}"
    return f"{message} ({ended})" if message else ended


class Driver:
    def __init__(self, home: Path, bucket: str, name: str, max_concurrent: int):
        self.home = Path(home)
        self.catalog = Catalog(self.home / "churn.db")
        self.store = LocalObjectStore(self.home, bucket)
        self.name = name
        self.max_concurrent = max_concurrent
        self.folder = job_dir(self.home, name)
        self.child_pid: int | None = None
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def on_sigterm(self, *_: object) -> None:
        self.stopping = True
        if self.child_pid:
            try:
                os.kill(self.child_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def job(self) -> dict:
        return local_records.job(self.catalog, self.name) or {}

    def stop_requested(self) -> bool:
        """A stop recorded in the catalog (a stop also sends SIGTERM; an unreadable catalog is not a stop)."""
        try:
            return self.job().get("status") == "Stopping"
        except ChurnError:
            return False

    def wait_for_slot(self) -> bool:
        """Block until this job is first in line and a slot is free; False if it was stopped meanwhile."""
        from churn_core.backends.local.backend import reconcile_jobs

        last_reconcile = 0.0
        while not self.stopping:
            if time.monotonic() - last_reconcile > 1.0:
                reconcile_jobs(self.catalog)
                last_reconcile = time.monotonic()
            claim = local_records.claim_training_slot(self.catalog, self.name, self.max_concurrent)
            if claim != "wait":
                return claim == "started"
            time.sleep(SLOT_POLL_SECONDS)
        return False

    def prepare(self, job: dict) -> dict:
        """Lay out /opt/ml the SageMaker way under the job folder and copy the channels in."""
        dataset = local_records.dataset(self.catalog, job["dataset"])
        if dataset is None:
            raise RuntimeError(f"dataset {job['dataset']!r} was deleted before the job started")
        paths = {
            "train": self.folder / "input" / "data" / "train",
            "test": self.folder / "input" / "data" / "test",
            "model": self.folder / "model",
            "output": self.folder / "output" / "data",
        }
        for path in paths.values():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        for channel in ("train", "test"):  # every object of the channel's prefix, as SageMaker copies it
            prefix = dataset[f"{channel}_key"].rsplit("/", 1)[0] + "/"
            for key in self.store.list(prefix):
                self.store.download(key, paths[channel] / key[len(prefix):])
        hps = for_container(loads(job["hyperparameters_json"], {}))
        env = dict(os.environ)
        env.update(
            SM_MODEL_DIR=str(paths["model"]),
            SM_OUTPUT_DATA_DIR=str(paths["output"]),
            SM_OUTPUT_FAILURE=str(self.folder / "output" / "failure"),
            SM_CHANNEL_TRAIN=str(paths["train"]),
            SM_CHANNEL_TEST=str(paths["test"]),
            SM_CHANNELS=json.dumps(["test", "train"]),
            SM_HPS=json.dumps(hps),
            SM_CURRENT_HOST="algo-1",
            SM_HOSTS=json.dumps(["algo-1"]),
            SM_NUM_CPUS=str(os.cpu_count() or 1),
            SM_TRAINING_ENV=json.dumps({"job_name": self.name, "hyperparameters": hps}),
            PYTHONUNBUFFERED="1",
        )
        return {"paths": paths, "env": env, "hps": hps}

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        (self.folder / "output" / "failure").unlink(missing_ok=True)
        job_outcome.clear(self.folder)
        if not self.wait_for_slot():
            self.finish_stopped()
            return 0
        job = self.job()
        try:
            plan = self.prepare(job)
        except Exception as exc:  # the dataset vanished or the disk is full: a clear failure, not a hang
            self.remove_inputs()
            self.fail(f"could not prepare the job's input: {exc}", None)
            return 1
        self.note_progress("Training")
        args = as_cli(plan["hps"])
        self.log(f"Starting training: {' '.join(args)}")
        self.child_pid = fork_script(ENTRY, args, plan["env"], self.folder)
        code = wait_child(self.child_pid)
        self.child_pid = None
        self.remove_inputs()  # whatever the outcome, and before it is recorded: nobody sees a half-cleaned job
        if self.stopping or self.stop_requested():
            self.finish_stopped()
            return 0
        if code != 0:
            self.fail(failure_reason(self.folder, code), code)
            return 1
        try:
            outcome = self.upload(plan["paths"])
        except Exception as exc:
            kept = self.folder / "output" / "model.tar.gz"
            where = f" The packed model is kept at {kept}." if kept.is_file() else ""
            detail = str(exc) if isinstance(exc, ChurnError) else f"{type(exc).__name__}: {exc}"
            self.fail(f"The model trained, but it could not be stored: {detail}{where}", code)
            return 1
        return 0 if self.finish(outcome, f"Completed in {time.time() - job['created_at']:.2f}s") else 1

    def note_progress(self, secondary_status: str) -> None:
        """Only a progress note: the job goes on (and its outcome is kept) when the catalog cannot take it."""
        try:
            self.catalog.update("jobs", self.name, secondary_status=secondary_status)
        except ChurnError as exc:
            self.log(f"could not note {secondary_status!r} in the catalog ({exc})")

    def upload(self, paths: dict) -> dict:
        """Pack the model and the evaluation data and store them in the bucket; the Completed outcome."""
        self.note_progress("Uploading")
        self.log("Uploading model artifacts")
        out = self.folder / "output"
        make_tarball(paths["model"], out / "model.tar.gz")
        make_tarball(paths["output"], out / "output.tar.gz")
        model_key = f"jobs/{self.name}/output/model.tar.gz"
        output_key = f"jobs/{self.name}/output/output.tar.gz"
        model_bytes = (out / "model.tar.gz").read_bytes()  # one read: the bytes stored are the bytes hashed
        output_bytes = (out / "output.tar.gz").read_bytes()
        self.store.put_bytes(model_key, model_bytes)
        self.store.put_bytes(output_key, output_bytes)
        model_sha = sha256_bytes(model_bytes)
        output_sha = sha256_bytes(output_bytes)
        del model_bytes, output_bytes
        metrics = json.loads((paths["model"] / "metrics.json").read_text())
        return {"status": "Completed", "ended_at": time.time(), "metrics_json": dumps(metrics),
                "model_key": model_key, "model_sha256": model_sha, "output_key": output_key,
                "output_sha256": output_sha}

    def finish(self, outcome: dict, done: str) -> bool:
        """Keep the outcome next to the job, then record it; True once the catalog has it. When the catalog
        cannot be written now, the outcome file stays and the next status read records it (job_outcome)."""
        try:
            job_outcome.write(self.folder, outcome)
        except OSError as exc:
            self.log(f"could not keep the outcome next to the job ({exc})")
        try:
            local_records.record_job_outcome(self.catalog, self.name, outcome)
        except ChurnError as exc:
            self.log(f"the outcome ({outcome['status']}) could not be recorded in the catalog now ({exc}); it is "
                     f"kept in {job_outcome.path(self.folder)} and recorded at the next status read")
            return False
        self.log(done)
        return True

    def remove_inputs(self) -> None:
        """The copied channels (customer data) do not outlive the training run."""
        shutil.rmtree(self.folder / "input", ignore_errors=True)

    def fail(self, reason: str, code: int | None) -> None:
        self.log(f"FAILED: {reason}")
        self.finish({"status": "Failed", "reason": reason, "exit_code": code, "ended_at": time.time()}, "Failed")

    def finish_stopped(self) -> None:
        self.log("Stopped by request")
        self.finish({"status": "Stopped", "ended_at": time.time()}, "Stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--max-concurrent", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args(argv)
    set_process_umask()  # inputs, model and logs are private (train.py, forked from here, inherits it)
    return Driver(Path(opts.home), opts.bucket, opts.job, opts.max_concurrent).run()


if __name__ == "__main__":
    sys.exit(main())
