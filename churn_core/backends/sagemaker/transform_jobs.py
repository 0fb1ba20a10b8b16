"""SageMaker batch transform jobs, the calls: upload the rewritten input, create a model for the job,
``CreateTransformJob``, read the job back and turn its output into results.csv/errors.csv. How the
files are shaped and filtered is in ``transform.py`` (pure, no AWS)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.backends.sagemaker.context import ARTIFACT_GRACE_SECONDS, SageMakerContext, epoch
from churn_core.backends.sagemaker.models import Models
from churn_core.backends.sagemaker.resources import Resources
from churn_core.backends.sagemaker.transform import (
    ENVIRONMENT_BATCH, ENVIRONMENT_REASONS, MAX_CONCURRENT_TRANSFORMS, MAX_PAYLOAD_MB, Prepared, first_problems,
    input_filter, output_filter, prepare_input, read_output,
)
from churn_core.catalog.database import loads
from churn_core.endpoints.pricing import HOURLY_USD
from churn_core.errors import BackendError, ChurnError
from churn_core.storage.disk import disk_writes
from churn_core.names import derived_name
from churn_core.transform.rules import output_keys


def transform_keys(name: str) -> dict:
    """Where a job's SageMaker input, output, plan and set-aside lines live in the bucket."""
    base = f"transforms/{name}/sagemaker"
    return {"input": f"{base}/input/", "output": f"{base}/output/", "plan": f"{base}/plan.json",
            "set_aside": f"{base}/set-aside.csv"}


class TransformJobs:
    def __init__(self, ctx: SageMakerContext, models: Models, resources: Resources):
        self.ctx = ctx
        self.models = models
        self.resources = resources

    def instance_types(self) -> list[str]:
        """What SageMaker accepts for a transform job (botocore's ``TransformInstanceType`` enum, not the
        endpoint types: ml.t2.*, ml.c5.large and ml.r5.* serve endpoints but cannot run a transform), the
        cheapest one with a known price first: the default."""
        enum = list(self.ctx.client("sagemaker").meta.service_model.shape_for("TransformInstanceType").enum)
        priced = sorted((HOURLY_USD[t], t) for t in enum if t in HOURLY_USD)
        default = priced[0][1] if priced else enum[0]
        return [default, *(t for t in enum if t != default)]

    def request(self, job: dict, model_name: str, prepared: Prepared) -> dict:
        store = self.ctx.store
        keys = transform_keys(job["name"])
        return {
            "TransformJobName": job["name"],
            "ModelName": model_name,
            "MaxConcurrentTransforms": MAX_CONCURRENT_TRANSFORMS,
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
            "BatchStrategy": "MultiRecord",
            # the model's environment carries its threshold; the job's asks for line-by-line answers
            "Environment": {ENVIRONMENT_BATCH: "1", **({ENVIRONMENT_REASONS: "1"} if prepared.reasons else {})},
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": store.uri(keys["input"])}},
                "ContentType": "text/csv",
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {"S3OutputPath": store.uri(keys["output"]).rstrip("/"), "Accept": "text/csv",
                                "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": job["instance_type"] or self.instance_types()[0],
                                   "InstanceCount": len(prepared.parts or ()) or 1},  # one input object each
            "DataProcessing": {"InputFilter": input_filter(prepared), "JoinSource": "Input",
                               "OutputFilter": output_filter(prepared)},
            "Tags": self.ctx.tags(transform=job["name"], model=job["model"]),
        }

    def start(self, job: dict, model: dict, schema: dict) -> dict:
        """Rewrite the input for SageMaker (headerless, model order), create a model for the trained model,
        then CreateTransformJob; the model is deleted again if the job cannot be created."""
        ctx, store = self.ctx, self.ctx.store
        ctx.require_role()
        ctx.image_uri()
        if not model.get("artifact_key") or not store.exists(model["artifact_key"]):
            raise BackendError(f"The model artifact {store.uri(model.get('artifact_key') or 'jobs/?')} is "
                               "missing from S3. Retrain the model, then start the transform again.")
        keys = transform_keys(job["name"])
        with disk_writes("prepare the transform's input", tempfile.gettempdir()), \
                tempfile.TemporaryDirectory(prefix="churn-transform-") as tmp:
            folder = Path(tmp)
            store.download(job["input_key"], folder / "source.csv")
            (folder / "input").mkdir()
            prepared = prepare_input(folder / "source.csv", schema, loads(job["keep_columns_json"], None),
                                     folder / "input", folder / "set-aside.csv", bool(job.get("reasons")),
                                     int(job["instance_count"] or 1), Path(job["input_key"]).stem or "input")
            store.put_file(keys["set_aside"], folder / "set-aside.csv")
            store.put_bytes(keys["plan"], prepared.to_json())
            if not prepared.parts:  # nothing SageMaker could score: no model, no job, no bill
                return self._unscorable(job, prepared, folder)
            for part in prepared.parts:
                store.put_file(f"{keys['input']}{part}", folder / "input" / part)
        model_name = derived_name(job["name"], "-model")
        container = self.models.request({"name": job["name"]}, {"name": model_name, "model": model["name"],
                                                                 "artifact_key": model["artifact_key"],
                                                                 "threshold": job["threshold"]})
        container["Tags"] = ctx.tags(transform=job["name"], model=model["name"])
        ctx.call("sagemaker", "create_model", f"create model {model_name}", **container)
        try:
            answer = ctx.call("sagemaker", "create_transform_job", f"start transform job {job['name']}",
                              **self.request(job, model_name, prepared))
        except ChurnError as exc:
            leftovers = self.resources.roll_back([("model", model_name)])
            note = f" Could not remove {', '.join(leftovers)}." if leftovers else f" Model {model_name} deleted."
            raise BackendError(f"Starting transform job {job['name']} failed: {exc}{note}") from exc
        return {"arn": answer.get("TransformJobArn", ""), "sagemaker_model": model_name, "rows_in": prepared.lines,
                "instance_count": len(prepared.parts)}

    def _unscorable(self, job: dict, prepared: Prepared, folder: Path) -> dict:
        """A file with no line to send (a header only, or every line set aside) fails at once, its lines
        listed in errors.csv as a finished job's would be; nothing is created on SageMaker."""
        results_key, errors_key = output_keys(job["name"])
        (folder / "none.out").touch()
        read_output(folder / "none.out", folder / "set-aside.csv", prepared, folder / "results.csv",
                    folder / "errors.csv")
        self.ctx.store.put_file(results_key, folder / "results.csv")
        self.ctx.store.put_file(errors_key, folder / "errors.csv")
        if prepared.set_aside:
            reason = (f"None of the {prepared.set_aside:,} lines could be scored (first problems: "
                      f"{first_problems(folder / 'set-aside.csv')}). Every line is listed in errors.csv; nothing "
                      "was sent to SageMaker.")
        else:
            reason = "The file has a header but no lines to score; nothing was sent to SageMaker."
        now = time.time()
        return {"status": "Failed", "failure_reason": reason, "rows_in": prepared.lines, "rows_done": prepared.lines,
                "rows_scored": 0, "rows_failed": prepared.set_aside, "output_key": results_key,
                "errors_key": errors_key, "ended_at": now, "updated_at": now, "instance_count": 0}

    def refresh(self, job: dict) -> dict:
        try:
            info = self.ctx.call("sagemaker", "describe_transform_job", f"read transform job {job['name']}",
                                 TransformJobName=job["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise
            if time.time() - float(job.get("created_at") or 0) < 60:
                return {}
            self._drop_model(job)
            return {"status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no transform job named {job['name']} in "
                                      f"{self.ctx.settings.region} "
                                      "(it was never created or the region changed). Start the job again."}
        status = info.get("TransformJobStatus") or "InProgress"
        fields: dict = {"status": status, "failure_reason": info.get("FailureReason") or ""}
        started = epoch(info.get("TransformStartTime"))
        if started:
            fields["started_at"] = started
        if status == "Failed" and not fields["failure_reason"]:
            fields["failure_reason"] = "SageMaker reported Failed without a reason; open the job log for details."
        if status == "Completed":
            fields.update(self._collect(job, info))
        if fields["status"] in ("Completed", "Failed", "Stopped"):
            fields["ended_at"] = epoch(info.get("TransformEndTime")) or time.time()
            self._drop_model(job)
        return fields

    def _collect(self, job: dict, info: dict) -> dict:
        """The .out object SageMaker wrote, read back into results.csv and errors.csv (the local format)."""
        store = self.ctx.store
        keys = transform_keys(job["name"])
        prepared = Prepared.from_json(store.get_bytes(keys["plan"]))
        listed = [k for k in store.list(keys["output"]) if k.endswith(".out")]
        # one .out per input object (named after it), joined in the input's order
        outputs = listed[:1] if prepared.parts is None else [f"{keys['output']}{p}.out" for p in prepared.parts]
        missing = [k for k in outputs if k not in listed]
        if missing or not outputs:
            ended = epoch(info.get("TransformEndTime")) or time.time()
            if time.time() - ended < ARTIFACT_GRACE_SECONDS:
                return {"status": "InProgress"}  # S3 may list the output a moment after Completed
            where = (f"for {len(missing)} of its {len(outputs)} input objects (first missing: {store.uri(missing[0])})"
                     if missing else f"under {store.uri(keys['output'])}")
            return {"status": "Failed",
                    "failure_reason": f"SageMaker reports Completed but wrote no output {where}. Start the job again."}
        results_key, errors_key = output_keys(job["name"])
        with disk_writes("read the transform's output back", tempfile.gettempdir()), \
                tempfile.TemporaryDirectory(prefix="churn-transform-") as tmp:
            folder = Path(tmp)
            with open(folder / "out.csv", "wb") as joined:
                for i, key in enumerate(outputs):
                    store.download(key, folder / f"{i}.out")
                    with open(folder / f"{i}.out", "rb") as part:
                        shutil.copyfileobj(part, joined, 1 << 20)
                        size = part.tell()
                        part.seek(max(0, size - 1))
                        if size and part.read(1) != b"\n":
                            joined.write(b"\n")  # the last record of an object may lack its line end
                    (folder / f"{i}.out").unlink()
            store.download(keys["set_aside"], folder / "set-aside.csv")
            scored, failed = read_output(folder / "out.csv", folder / "set-aside.csv", prepared,
                                         folder / "results.csv", folder / "errors.csv")
            store.put_file(results_key, folder / "results.csv")
            store.put_file(errors_key, folder / "errors.csv")
        fields = {"rows_in": scored + failed, "rows_done": scored + failed, "rows_scored": scored,
                  "rows_failed": failed, "output_key": results_key, "errors_key": errors_key}
        if scored == 0:
            fields.update(status="Failed", failure_reason=f"None of the {scored + failed:,} lines could be scored; "
                                                          "every line and its problem is in errors.csv.")
        return fields

    def _drop_model(self, job: dict) -> None:
        """The SageMaker model made for the job goes with the job (best effort: Clean up finds it by tag)."""
        if job.get("sagemaker_model"):
            try:
                self.resources.delete("model", job["sagemaker_model"])
            except ChurnError:
                pass

    def stop(self, job: dict) -> dict:
        try:
            self.ctx.call("sagemaker", "stop_transform_job", f"stop transform job {job['name']}",
                          TransformJobName=job["name"])
        except AwsError as exc:
            if exc.not_found:
                raise BackendError(f"SageMaker has no transform job named {job['name']}; nothing to stop.") from None
            raise BackendError(f"Could not stop transform job {job['name']}: {exc} The job keeps running (and "
                               "billing) until it finishes or is stopped in the SageMaker console.") from None
        return {}
