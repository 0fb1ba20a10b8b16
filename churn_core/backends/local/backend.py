"""The local backend: folders for S3, child processes for training jobs, local HTTP servers for endpoints."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import time
from shlex import quote as shell_quote

import psutil
import urllib.error
import urllib.request
from pathlib import Path

from churn_core.backends.local.endpoint import auth
from churn_core.backends.local.endpoint import processes as endpoint_processes
from churn_core.backends.local import job_outcome
from churn_core.processes.warm import client as warm
from churn_core.catalog import kept_records, local_records, outcomes
from churn_core.catalog.endpoint_configs import config_variants
from churn_core.catalog.database import Catalog
from churn_core.errors import BackendError
from churn_core.monitoring.capture_bounds import bounds_of
from churn_core.backends.local.endpoint.control import (
    control_for, note_variants, read_control, wait_for_generation, write_control, write_in_folder as _write_in_folder,
)
from churn_core.paths import ENTRY
from churn_core.storage.private_files import make_dirs, write_text
from churn_core.processes.detached import (
    describe_exit, is_alive, kill_group, reap, spawn_detached, tail, wait_for_exit,
)
from churn_core.records import Dataset
from churn_core.tuning.reconcile import reconcile_tuning
from churn_core.storage.objects import LocalObjectStore

VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"  # the endpoint names the variant that answered


def reconcile_jobs(catalog: Catalog) -> list[str]:
    """A local job whose driver is gone without a result becomes Failed (never stuck InProgress)."""
    changed = []
    for job in local_records.running_local(catalog, "training"):
        if job["pid"] is None or is_alive(job["pid"], job["name"]):
            continue
        _, code = reap(job["pid"], wait=2.0)
        if local_records.status(catalog, "training", job["name"]) not in ("InProgress", "Stopping"):
            continue  # it finished on its own between the two reads
        kill_group(job["pid"], grace=0.5)  # the training script may outlive its driver
        folder = Path(catalog.path).parent / "jobs" / job["name"]
        # The driver removes the copied channels (customer data) itself, unless it was killed first.
        shutil.rmtree(folder / "input", ignore_errors=True)
        outcome = job_outcome.read(folder)
        with catalog.tx() as conn:
            if outcome is not None:  # the driver ended it but could not record it: its own words, its model
                local_records.record_job_outcome(
                    catalog, job["name"], outcome,
                    "recorded from the job's outcome.json: the catalog could not be written then", conn=conn)
            elif job["status"] == "Stopping":
                local_records.end_if(catalog, "training", job["name"], "Stopped", was=("Stopping",), conn=conn,
                                     event="Stopped")
            else:
                reason = f"The training process exited unexpectedly ({describe_exit(code)}). Start the job again."
                local_records.end_if(catalog, "training", job["name"], "Failed", reason, was=("InProgress",),
                                     conn=conn, event=f"Failed: {reason}", exit_code=code)
        changed.append(job["name"])
    return changed


def reconcile_transforms(catalog: Catalog) -> list[str]:
    """A local transform whose driver is gone without a result becomes Failed (or Stopped, if asked to stop)."""
    changed = []
    for job in local_records.running_local(catalog, "transform"):
        if job["pid"] is None or is_alive(job["pid"], job["name"]):
            continue
        _, code = reap(job["pid"], wait=2.0)
        kill_group(job["pid"], grace=0.5)  # its workers, should any outlive it
        now = time.time()
        with catalog.tx() as conn:
            fresh = local_records.status(catalog, "transform", job["name"], conn)
            if fresh not in ("InProgress", "Stopping"):
                continue  # it finished on its own between the two reads
            if fresh == "Stopping":
                outcomes.finish(catalog, "transform", job["name"], "Stopped", conn=conn, event="Stopped",
                                ended_at=now, updated_at=now)
            else:
                reason = (f"The transform process exited unexpectedly ({describe_exit(code)}) before it finished. "
                          "Start the job again.")
                outcomes.finish(catalog, "transform", job["name"], "Failed", reason, conn=conn,
                                event=f"Failed: {reason}", ended_at=now, updated_at=now, exit_code=code)
        changed.append(job["name"])
    return changed


RESTART_GRACE_SECONDS = 5.0
UPDATE_MARK = "update.json"  # in the endpoint's folder while an update runs: who runs it, towards which config
DEPLOY_GRACE_SECONDS = 60.0  # a row without a supervisor pid this young belongs to a deploy still starting it
PROBE_TIMEOUT = 120.0


def _refused(exc: Exception) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, ConnectionRefusedError)


class LocalBackend:
    name = "local"
    poll_interval = 0.05
    quick_deploy = True
    precheck_requests = False  # the local server answers a bad request with the same 4xx itself

    def __init__(self, settings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self.home = Path(settings.home)
        self.store = LocalObjectStore(self.home, settings.bucket)
        warm.ensure_running()  # jobs and endpoints start in milliseconds once it has imported the stack

    def training_instance_types(self) -> list[str]:
        return []

    def runtime_client_code(self, endpoint_url: str) -> str:
        return (f'boto3.client("sagemaker-runtime", endpoint_url="{endpoint_url}", region_name="us-east-1",\n'
                '                       aws_access_key_id="local", aws_secret_access_key="local")')

    def curl_command(self, endpoint_name: str, endpoint_url: str, body: str) -> str:
        return f"curl -s -H 'Content-Type: application/json' -d {shell_quote(body)} {endpoint_url}/invocations"

    # ---- start-up -------------------------------------------------------------------------
    def reconcile(self) -> None:
        reconcile_jobs(self.catalog)
        self._reconcile_tuning()
        reconcile_transforms(self.catalog)
        for row in local_records.local_endpoints(self.catalog):
            self.refresh_endpoint(row)

    # ---- training -------------------------------------------------------------------------
    def job_folder(self, name: str) -> Path:
        return self.home / "jobs" / name

    def start_training(self, job: dict, dataset: Dataset) -> dict:
        folder = self.job_folder(job["name"])
        make_dirs(folder)
        manifest = {k: job.get(k) for k in ("name", "dataset", "dataset_sha256", "algorithm", "hyperparameters_json",
                                             "code_sha256", "created_at", "instance_type", "instance_count")}
        write_text(folder / "job.json", json.dumps(manifest, indent=1))  # what a catalog rebuild needs to know
        try:
            pid = spawn_detached(
                [
                    "-m", "churn_core.backends.local.job_driver",
                    "--home", str(self.home),
                    "--bucket", self.settings.bucket,
                    "--job", job["name"],
                    "--max-concurrent", str(self.settings.max_concurrent_jobs),
                ],
                folder / "train.log",
            )
        except warm.Unresponsive as exc:
            raise BackendError(f"Could not start the training process: {exc}.") from None
        except OSError as exc:
            advice = f" Free some disk space in {self.home}." if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise BackendError(f"Could not start the training process: {exc}.{advice}") from None
        return {"pid": pid}

    def refresh_training(self, job: dict) -> dict:
        if job["status"] in ("InProgress", "Stopping") and job["pid"] and not is_alive(job["pid"], job["name"]):
            reconcile_jobs(self.catalog)
        return {}

    def stop_training(self, job: dict) -> dict:
        kill_group(job["pid"], grace=5.0)
        reconcile_jobs(self.catalog)
        return {}

    def training_log(self, job: dict, lines: int = 200) -> str:
        return tail(self.job_folder(job["name"]) / "train.log", lines)

    # ---- endpoints ------------------------------------------------------------------------
    def endpoint_folder(self, name: str, uid: str = "") -> Path:
        """``endpoints/<name>.<uid>``: one folder per catalog row, never shared by two deploys of a name."""
        return self.home / "endpoints" / endpoint_processes.folder_name(name, uid)

    def _folder_of(self, endpoint: dict) -> Path:
        return self.endpoint_folder(endpoint["name"], endpoint.get("uid") or "")

    def _spawn_supervisor(self, name: str, uid: str) -> int:
        folder = self.endpoint_folder(name, uid)
        return spawn_detached(
            [
                "-m",
                "churn_core.backends.local.endpoint.supervisor",
                "--home",
                str(self.home),
                "--bucket",
                self.settings.bucket,
                "--endpoint",
                name,
                "--uid",
                uid,
                "--host",
                self.settings.bind_host,
            ],
            folder / "supervisor.log",
            cwd=folder,  # what it is, for endpoint_processes.find: its working directory is its folder
        )

    def create_endpoint(self, endpoint: dict, config: dict, deployed_model: dict) -> dict:
        folder = self._folder_of(endpoint)
        if not self.store.exists(deployed_model["artifact_key"]):
            raise BackendError(
                f"The model artifact {deployed_model['artifact_key']} is missing from {self.store.root}. "
                "Retrain the model, then deploy again."
            )
        make_dirs(folder)
        manifest = {  # what a catalog rebuilt from disk needs to know about this endpoint
            "name": endpoint["name"], "uid": endpoint.get("uid") or "", "model": endpoint["model"],
            "config": config["name"], "deployed_model": deployed_model["name"],
            "artifact_key": deployed_model["artifact_key"], "artifact_sha256": deployed_model["artifact_sha256"],
            "instance_type": endpoint["instance_type"], "instance_count": endpoint["instance_count"],
            "created_at": endpoint["created_at"], "generation": endpoint.get("generation") or 1,
            "variants": [{"variant": "AllTraffic", "weight": 1.0, "deployed": dict(deployed_model)}],
        }
        write_text(folder / "endpoint.json", json.dumps(manifest, indent=1))
        return {"pid": self._spawn_supervisor(endpoint["name"], endpoint.get("uid") or ""), "workdir": str(folder)}

    def refresh_endpoint(self, endpoint: dict) -> dict:
        """A supervisor that vanished (killed, machine restarted) is replaced; its server is restarted."""
        if endpoint["status"] not in ("Creating", "InService") or is_alive(endpoint["pid"], endpoint["name"]):
            return {}
        if endpoint["pid"] is None and time.time() - float(endpoint["created_at"] or 0) < DEPLOY_GRACE_SECONDS:
            return {}  # a deploy in progress owns it: its supervisor is being started right now
        with self.catalog.tx() as conn:  # BEGIN IMMEDIATE: one session repairs, the others then see its pid
            row = local_records.endpoint(self.catalog, endpoint["name"], conn=conn)
            if row is None or row["status"] not in ("Creating", "InService") or row["pid"] != endpoint["pid"] \
                    or row["uid"] != endpoint.get("uid", row["uid"]):
                return {}  # deleted (or replaced) meanwhile, or another session already replaced the supervisor
            kill_group(row["server_pid"], grace=1.0)
            pid = self._spawn_supervisor(endpoint["name"], row["uid"])
            local_records.replace_supervisor(self.catalog, endpoint["name"], row["uid"], pid, conn=conn)
        return {}

    def endpoint_stats(self, endpoint: dict) -> dict:
        from churn_core.backends.local.endpoint.server import read_stats

        from churn_core.backends.local.endpoint.capture_writer import capture_status

        folder = self._folder_of(endpoint)
        return dict(read_stats(folder), capture=capture_status(folder))

    def endpoint_log(self, endpoint: dict, lines: int = 200) -> str:
        folder = self._folder_of(endpoint)
        parts = [tail(folder / "supervisor.log", lines), tail(folder / "server.log", lines)]
        return "\n".join(p for p in parts if p)

    def invoke(self, endpoint: dict, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str, str]:
        if endpoint["status"] != "InService" or not endpoint["url"]:
            raise BackendError(f"Endpoint {endpoint['name']} is {endpoint['status']}, not InService. Wait or redeploy.")
        request = urllib.request.Request(
            f"{endpoint['url']}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": content_type, "Accept": accept,
                     **auth.platform_headers(self._folder_of(endpoint), self.settings.bind_host)})
        deadline = time.monotonic() + RESTART_GRACE_SECONDS
        while True:
            try:
                with urllib.request.urlopen(request, timeout=65) as resp:
                    return resp.status, resp.read(), resp.headers.get("Content-Type", ""), \
                        resp.headers.get(VARIANT_HEADER, "")
            except urllib.error.HTTPError as err:
                return err.code, err.read(), err.headers.get("Content-Type", ""), err.headers.get(VARIANT_HEADER, "")
            except (urllib.error.URLError, OSError) as exc:
                if _refused(exc) and time.monotonic() < deadline:  # the supervisor is restarting the server
                    time.sleep(0.1)
                    continue
                raise BackendError(
                    f"Endpoint {endpoint['name']} did not answer at {endpoint['url']} ({exc}). "
                    "It may be restarting; try again in a few seconds or check its log on the Endpoints page."
                ) from None

    def delete_endpoint(self, endpoint: dict, config: dict | None, deployed_models: list[dict]) -> None:
        kill_group(endpoint["pid"], grace=5.0)
        kill_group(endpoint["server_pid"], grace=2.0)
        # A supervisor whose pid was not recorded yet (the deploy is still starting it) is found by its folder.
        mine = endpoint_processes.folder_name(endpoint["name"], endpoint.get("uid") or "")
        endpoint_processes.stop([p for p in endpoint_processes.find(self.home) if p.folder == mine])
        shutil.rmtree(self._folder_of(endpoint), ignore_errors=True)
        self.delete_orphan(endpoint["name"])  # and whatever an earlier deploy of the name left without a row

    def _live_rows(self) -> set[tuple[str, str]]:
        return local_records.live_local_endpoints(self.catalog)

    def _orphan_folders(self) -> dict[str, str]:
        """Endpoint folders (``NAME.UID``) that no catalog row has: folder name → endpoint name."""
        rows = local_records.endpoint_keys(self.catalog)
        orphans = {}
        root = self.home / "endpoints"
        for folder in root.iterdir() if root.is_dir() else []:
            parsed = endpoint_processes.parse_folder(folder.name)
            if parsed and parsed[1] and parsed not in rows and folder.is_dir():
                orphans[folder.name] = parsed[0]
        return orphans

    def owned_endpoint_names(self) -> list[str]:
        """The catalog's endpoints, plus the names of endpoint processes or folders no catalog row owns."""
        names = local_records.local_endpoint_names(self.catalog)
        live = self._live_rows()
        names |= {p.name for p in endpoint_processes.strays(self.home, live)}
        names |= set(self._orphan_folders().values())
        return sorted(names)

    def delete_orphan(self, name: str) -> dict:
        """Stop the endpoint processes of ``name`` that no catalog row owns (found by what they are: their
        folder under CHURN_HOME and their process title) and remove the folders no row owns."""
        live = self._live_rows()
        stray = [p for p in endpoint_processes.strays(self.home, live) if p.name == name]
        endpoint_processes.stop(stray)
        folders = {p.folder for p in stray} | {f for f, n in self._orphan_folders().items() if n == name}
        for folder in folders:
            shutil.rmtree(self.home / "endpoints" / folder, ignore_errors=True)
        return {"endpoint": name, "endpoint_config": None, "model": None,
                "stopped": sorted(p.pid for p in stray)}

    # ---- tuning (issue 19): a detached churn_core.backends.local.tuning_driver per tuning job
    # ------------------------------------
    def tuning_parallel_default(self) -> int:
        return self.settings.max_concurrent_jobs

    def tuning_needs_log_metric(self) -> bool:
        return False  # the tuning process computes any registered objective itself

    def tuning_folder(self, name: str) -> Path:
        return self.home / "tuning" / name

    def _reconcile_tuning(self) -> None:
        reconcile_tuning(self.catalog, reconcile_jobs)

    def start_tuning(self, tuning: dict, dataset: Dataset) -> dict:
        try:
            pid = spawn_detached(
                ["-m", "churn_core.backends.local.tuning_driver", "--home", str(self.home), "--bucket",
                 self.settings.bucket,
                 "--tuning", tuning["name"]],
                self.tuning_folder(tuning["name"]) / "tuning.log",
            )
        except OSError as exc:
            raise BackendError(f"Could not start the tuning process: {exc}. Check free disk space in {self.home}.") \
                from None
        kept_records.keep(self.catalog, "tuning", tuning["name"], pid=pid)  # what a restore finds of it
        return {"pid": pid}

    def refresh_tuning(self, tuning: dict) -> tuple[dict, list]:
        if tuning["pid"] and not is_alive(tuning["pid"], tuning["name"]):
            self._reconcile_tuning()
        return {}, []

    def stop_tuning(self, tuning: dict, timeout: float = 60.0) -> dict:
        """The tuning process stops its running trials and ends Stopped; if it cannot, it is killed and the
        catalog repaired (its trials stopped) the way a crash is."""
        deadline = time.monotonic() + timeout
        while is_alive(tuning["pid"], tuning["name"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_group(tuning["pid"], grace=2.0)
        self._reconcile_tuning()
        return {}

    def tuning_log(self, tuning: dict, lines: int = 200) -> str:
        return tail(self.tuning_folder(tuning["name"]) / "tuning.log", lines)

    def delete_tuning(self, tuning: dict) -> None:
        shutil.rmtree(self.tuning_folder(tuning["name"]), ignore_errors=True)

    # ---- batch transform jobs (churn_core/transform_driver.py does the work) ----------------------------
    def transform_folder(self, name: str) -> Path:
        return self.home / "transforms" / name

    def default_transform_instances(self) -> int:
        from churn_core.transform.rules import local_cpu_count

        return local_cpu_count()

    def transform_instance_types(self) -> list[str]:
        return ["local"]

    def start_transform(self, job: dict, model: dict, schema: dict) -> dict:
        try:
            pid = spawn_detached(
                ["-m", "churn_core.backends.local.transform_driver", "--home", str(self.home), "--bucket",
                 self.settings.bucket,
                 "--transform", job["name"]],
                self.transform_folder(job["name"]) / "transform.log",
            )
        except OSError as exc:
            raise BackendError(
                f"Could not start the transform process: {exc}. Check free disk space in {self.home}."
            ) from None
        kept_records.keep(self.catalog, "transform", job["name"], pid=pid)  # what a restore finds of it
        return {"pid": pid}

    def refresh_transform(self, job: dict) -> dict:
        if job["status"] in ("InProgress", "Stopping") and job["pid"] and not is_alive(job["pid"], job["name"]):
            reconcile_transforms(self.catalog)
        return {}

    def stop_transform(self, job: dict) -> dict:
        kill_group(job["pid"], grace=5.0)
        reconcile_transforms(self.catalog)
        return {}

    def transform_log(self, job: dict, lines: int = 200) -> str:
        return tail(self.transform_folder(job["name"]) / "transform.log", lines)

    def local_bucket(self) -> str | None:
        return self.settings.bucket

    def check_connection(self) -> list[tuple[str, bool, str]]:
        probe = self.home / ".write-probe"
        try:
            probe.write_text("ok")
            probe.unlink()
            writable = (True, f"{self.home} is writable")
        except OSError as exc:
            writable = (False, f"{self.home} is not writable ({exc}); set CHURN_HOME to a writable folder")
        free = shutil.disk_usage(self.home).free / 1e9
        return [
            ("State directory", *writable),
            ("Free disk", free > 0.5, f"{free:.1f} GB free" + ("" if free > 0.5 else "; free some space")),
            ("Local store", True, str(self.store.root)),
            ("Warm process", *warm.status()),
        ]


    # ---- rollout and capture: a new generation of the server's control file ---------------------
    # Everything an update uses lives in the endpoint's own folder, endpoints/<name>.<uid>, where its supervisor
    # and model server run: control.json (the generations), models/<sha256>/ (unpacked by the probe from the
    # bytes it verified), generations/<pid> (what each worker serves), stats/ and the probe's log. An update
    # keeps the endpoint's row and uid, so its supervisor goes on serving the same row in the same folder.
    def _workers(self, endpoint: dict) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(endpoint["server_pid"]).children()]
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError, ValueError):
            return []

    def _switch(self, endpoint: dict, control) -> None:
        """Write a new generation and wait until every worker serves it; the old one back on failure."""
        folder = self._folder_of(endpoint)
        try:
            old = read_control(folder)
            new = dataclasses.replace(control, generation=old.generation + 1)
            write_control(folder, new)
        except (OSError, ValueError) as exc:  # its folder went with a delete of the endpoint meanwhile
            raise BackendError(f"the endpoint's control file in {folder} cannot be changed ({exc}); "
                               "it may have been deleted meanwhile") from None
        problem = wait_for_generation(folder, new.generation, lambda: self._workers(endpoint))
        if problem:
            try:
                write_control(folder, dataclasses.replace(old, generation=new.generation + 1))
            except OSError:
                pass  # deleted meanwhile: nothing left to put back
            raise BackendError(problem)

    def _probe(self, endpoint: dict, variant: dict) -> None:
        """A separate process verifies, unpacks, loads and tries the model before any worker is asked to."""
        folder = self._folder_of(endpoint)
        deployed = variant["deployed"]
        log = folder / "probe.log"
        if not folder.is_dir():
            raise BackendError(f"the endpoint's folder {folder} is gone; it may have been deleted meanwhile")
        pid = spawn_detached(["-m", "churn_core.backends.local.endpoint.server", "--probe", "--artifact",
                              str(self.store.path(deployed["artifact_key"])), "--sha256", deployed["artifact_sha256"],
                              "--entry", str(ENTRY), "--workdir", str(folder)], log,
                             cwd=folder)  # its folder: a delete of the endpoint finds and stops it too
        code = wait_for_exit(pid, PROBE_TIMEOUT)
        if code != 0:
            kill_group(pid, grace=1.0)
            lines = [line for line in tail(log, 40).splitlines() if line.startswith("ERROR:")]
            reason = lines[-1][len("ERROR:"):].strip() if lines else f"the check ended with {describe_exit(code)}"
            raise BackendError(f"the new model of variant {variant['variant']} cannot serve: {reason}")

    def _control(self, endpoint: dict):
        folder = self._folder_of(endpoint)
        try:
            return read_control(folder)
        except (OSError, ValueError) as exc:
            raise BackendError(f"the endpoint's control file in {folder} cannot be read ({exc}); "
                               "it may have been deleted meanwhile") from None

    def update_endpoint(self, endpoint: dict, new_config: dict, variants: list[dict], check=None,
                        probe: bool = True) -> dict:
        serving = {v.sha256 for v in self._control(endpoint).variants} if probe else None
        mark = self._folder_of(endpoint) / UPDATE_MARK
        _write_in_folder(mark, json.dumps({"pid": os.getpid(), "started": _started(os.getpid()),
                                           "config": new_config["name"]}))
        try:
            for variant in variants:
                if probe and variant["deployed"]["artifact_sha256"] not in serving:
                    self._probe(endpoint, variant)
            if check is not None:
                check()  # raises when a version was rejected during the probe: it never takes traffic
            generation = self._control(endpoint).generation
            self._switch(endpoint, control_for(self.store, endpoint, variants, generation))
        finally:
            mark.unlink(missing_ok=True)
        note_variants(self._folder_of(endpoint), endpoint, variants, config=new_config["name"])
        return {"update": "done"}

    def update_outcome(self, endpoint: dict) -> tuple[str, str]:
        """An endpoint seen Updating: pending while the process running its update is alive (another session
        looking must not roll it back); else (the dashboard stopped mid-way) done if the server switched,
        failed otherwise."""
        try:
            mark = json.loads((self._folder_of(endpoint) / UPDATE_MARK).read_text())
            if mark["config"] == endpoint["pending_config"] and _started(int(mark["pid"])) == mark["started"]:
                return "pending", ""
        except (OSError, ValueError, KeyError, TypeError):
            pass

        wanted = {v["deployed"]["artifact_sha256"] for v in config_variants(self.catalog, endpoint["pending_config"])}
        try:
            serving = {v.sha256 for v in read_control(self._folder_of(endpoint)).variants}
        except (OSError, ValueError):
            serving = set()
        if wanted and wanted == serving:
            return "done", ""
        return "failed", "the update was interrupted before the model server switched to the new models"

    def restore_serving(self, endpoint: dict, config: str, variants: list[dict]) -> None:
        """Back to the models the endpoint served a moment ago (an update refused as it committed): no probe."""
        self.update_endpoint(endpoint, {"name": config}, variants, probe=False)

    capture_by_update = False  # the local server changes its capture share in place
    bounds_capture = True  # its capture writer keeps the byte budget, retention and free-disk floor

    def retire_config(self, config: str, models: list[str]) -> None:
        return None  # nothing outside the catalog and the endpoint folder

    def set_variant_weights(self, endpoint: dict, weights: dict[str, float]) -> None:
        old = self._control(endpoint)
        variants = tuple(dataclasses.replace(v, weight=float(weights.get(v.name, v.weight))) for v in old.variants)
        self._switch(endpoint, dataclasses.replace(old, variants=variants))
        note_variants(self._folder_of(endpoint), endpoint,
                      [dict(v, weight=float(weights.get(v["variant"], v["weight"])))
                       for v in config_variants(self.catalog, endpoint["config"])])

    def check_capture(self, percent: float) -> None:
        return None  # the local server samples any share, 0.3 % included

    def set_capture(self, endpoint: dict, percent: float) -> None:
        old = self._control(endpoint)
        extra = dict(old.extra, capture_bounds=bounds_of(endpoint).to_dict())  # the row carries the new bounds
        self._switch(endpoint, dataclasses.replace(old, capture_percent=float(percent), extra=extra))

    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        from churn_core.backends.local.endpoint.stats import read_traffic

        return read_traffic(self._folder_of(endpoint))

    # ---- model registry: the catalog is the whole registry locally ----------------------------
    def ensure_model_group(self, group: dict) -> str:
        return ""

    def register_model_version(self, group: dict, trained_model: dict, note: str) -> dict:
        return {}

    def set_model_version_status(self, version, status: str, note: str) -> None:
        return None


def _started(pid: int) -> float | None:
    """When ``pid`` started (None if it is gone): a pid with the same start time is the same process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def ping(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def server_failure(folder: Path, code: int | None) -> str:
    lines = [line for line in tail(folder / "server.log", 80).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line]
    message = errors[-1].split("ERROR:", 1)[1].strip() if errors else (lines[-1] if lines else "")
    return f"{message} (model server {describe_exit(code)})" if message else f"model server {describe_exit(code)}"
