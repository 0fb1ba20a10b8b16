"""Helpers of the batch transform tests: trained models, customer files, and what SageMaker's batch
transform writes for a job (moto writes nothing)."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

from churn_core.paths import entry_module
from churn_core.data.sample import make_sample, make_subscription_sample


def customers(rows: int, seed: int = 21, numeric: bool = False) -> bytes:
    """A file to score: a sample without its target column (the subscription one keeps its customerID)."""
    data = make_sample(rows=rows, seed=seed) if numeric else make_subscription_sample(rows, seed=seed)
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    drop = header.index("Churn")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(lines):
        writer.writerow(row[:drop] + row[drop + 1:])
    return out.getvalue().encode()


def load_model(p, name: str) -> dict:
    """The model as a server loads it: artifact SHA-256 checked, extracted, the model's own model_fn."""
    from churn_core.storage.artifacts import verify_sha256
    from churn_core.backends.local.endpoint.server import safe_extract

    row = p.get_model(name)
    data = p.store.get_bytes(row["artifact_key"])
    verify_sha256(data, row["artifact_sha256"])
    folder = Path(tempfile.mkdtemp(prefix="model-"))
    (folder / "model.tar.gz").write_bytes(data)
    safe_extract(folder / "model.tar.gz", folder / "model")
    return entry_module("train").model_fn(str(folder / "model"))


def _select(row: list[str], path: str | None) -> list[str]:
    """A CSV record under a JSONPath index filter: $, $[i], $[i,j,...], $[a:b] (end-exclusive), negatives."""
    if path in (None, "", "$"):
        return row
    match = re.fullmatch(r"\$\[(.*)\]", path.replace(" ", ""))
    if not match:
        raise ValueError(f"unsupported filter for CSV: {path}")
    out: list[str] = []
    for part in match.group(1).split(","):
        if ":" in part:
            a, b = part.split(":")
            out.extend(row[int(a) if a else None: int(b) if b else None])
        else:
            out.append(row[int(part)])
    return out


def fake_batch_transform(sm, s3, job_name: str, predict_lines) -> list[str]:
    """What SageMaker batch transform writes for a job, done by the test (moto writes no output).

    Every object under the input prefix is split into lines (SplitType Line); each line passes the
    InputFilter, ``predict_lines`` (the model: a list of CSV lines -> one answer line each) answers,
    the answer is joined to the whole input line (JoinSource Input), the OutputFilter picks fields,
    and the lines go to ``<output path>/<input key relative to the prefix>.out`` (AssembleWith Line).
    After /work/research/scripts/fake_transform.py."""
    d = sm.describe_transform_job(TransformJobName=job_name)
    src = d["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    dst = d["TransformOutput"]["S3OutputPath"].rstrip("/")
    dp = d.get("DataProcessing", {})
    in_bucket, in_prefix = src[5:].split("/", 1)
    out_bucket, out_prefix = ([*dst[5:].split("/", 1), ""])[:2]
    written = []
    for obj in s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix).get("Contents", []):
        body = s3.get_object(Bucket=in_bucket, Key=obj["Key"])["Body"].read().decode()
        rows = [r for r in csv.reader(io.StringIO(body)) if r]
        model_in = [",".join(_select(r, dp.get("InputFilter"))) for r in rows]
        answers = predict_lines(model_in)
        assert len(answers) == len(rows), "one answer per record"
        out_rows = []
        for r, a in zip(rows, answers, strict=True):
            joined = r + next(csv.reader([a])) if dp.get("JoinSource") == "Input" else next(csv.reader([a]))
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(_select(joined, dp.get("OutputFilter")))
            out_rows.append(buffer.getvalue())
        rel = obj["Key"][len(in_prefix):].lstrip("/")
        key = f"{out_prefix}/{rel}.out".lstrip("/")
        s3.put_object(Bucket=out_bucket, Key=key, Body=("\n".join(out_rows) + "\n").encode())
        written.append(f"s3://{out_bucket}/{key}")
    return written


def handler_chain(model: dict, environment: dict):
    """predict_lines for fake_batch_transform: the model's own input_fn → predict_fn → output_fn on the
    mini-batch, with the transform job's environment (as the container would run them)."""
    import os

    train = entry_module("train")

    def predict_lines(lines: list[str]) -> list[str]:
        saved = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        try:
            body = "".join(line + "\n" for line in lines)
            answer, ctype = train.output_fn(train.predict_fn(train.input_fn(body, "text/csv"), model), "text/csv")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert ctype == "text/csv"
        return answer.splitlines()

    return predict_lines
