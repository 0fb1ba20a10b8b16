"""The SageMaker backend's object store: a real S3 bucket under a key prefix.

Keys stay relative, exactly as with the local store (``datasets/telecom/train/train.csv``); the
store adds the configured prefix, so that key lives at
``s3://<bucket>/<prefix>/datasets/telecom/train/train.csv``. Every call goes through
``churn_core.backends.sagemaker.aws.call`` (throttling retries, user-facing errors).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from churn_core.backends.sagemaker.aws import AwsClients, AwsError, call
from churn_core.errors import NotFoundError, ValidationError
from churn_core.storage.disk import disk_writes
from churn_core.storage.objects import _check_key, _too_large
from churn_core.wording import plural

# S3 PutObject takes up to 5 GB in one request; uploads are limited far below that (CHURN_MAX_UPLOAD_MB).
_CHUNK = 1 << 20


class S3ObjectStore:
    """``ObjectStore`` on S3: ``bucket`` plus ``prefix``; keys are relative to the prefix."""

    def __init__(self, clients: AwsClients, bucket: str, prefix: str = ""):
        self.clients = clients
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    # ---- addressing ---------------------------------------------------------------------------
    @property
    def s3(self):
        return self.clients.client("s3")

    def require_bucket(self) -> str:
        if not self.bucket:
            raise ValidationError(
                "No S3 bucket is configured for the SageMaker backend. Set CHURN_S3_BUCKET to a bucket in "
                f"{self.clients.settings.region} (see .env.example and docs/aws.md), or use CHURN_BACKEND=local."
            )
        return self.bucket

    def full_key(self, key: str) -> str:
        """Relative key (or prefix ending in ``/``) → the S3 object key under the configured prefix."""
        trailing = key.endswith("/")
        body = _check_key(key.rstrip("/")) if key.strip("/") else ""
        full = f"{self.prefix}/{body}" if self.prefix and body else (self.prefix or body)
        return f"{full}/" if trailing and full else full

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key_from_uri(self, uri: str) -> str:
        """``s3://bucket/prefix/a/b`` → ``a/b`` (the relative key ``get_bytes`` takes)."""
        head = f"s3://{self.bucket}/"
        if not uri.startswith(head):
            raise ValidationError(f"{uri} is outside the configured bucket {self.bucket}; it cannot be read here.")
        full = uri[len(head):]
        if self.prefix:
            if not full.startswith(self.prefix + "/"):
                raise ValidationError(f"{uri} is outside the configured prefix {self.root_uri}/.")
            full = full[len(self.prefix) + 1:]
        return _check_key(full)

    def _what(self, verb: str, key: str) -> str:
        return f"{verb} {self.uri(key)}"

    # ---- ObjectStore ----------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> str:
        call(self.s3, "put_object", what=self._what("upload", key), settings=self.clients.settings,
             Bucket=self.require_bucket(), Key=self.full_key(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        with open(path, "rb") as fh:
            call(self.s3, "put_object", what=self._what("upload", key), settings=self.clients.settings,
                 Bucket=self.require_bucket(), Key=self.full_key(key), Body=fh)
        return self.uri(key)

    def _get(self, key: str):
        try:
            return call(self.s3, "get_object", what=self._what("read", key), settings=self.clients.settings,
                        Bucket=self.require_bucket(), Key=self.full_key(key))
        except AwsError as exc:
            if exc.code in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError(f"Object {self.uri(key)} does not exist in S3. It may have been deleted; "
                                    "re-upload the dataset or retrain the model.") from None
            raise

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes from one GetObject (a size over ``max_bytes`` is refused before reading)."""
        answer = self._get(key)
        body = answer["Body"]
        try:
            if max_bytes is None:
                return body.read()
            size = answer.get("ContentLength")
            if isinstance(size, int) and size > max_bytes:
                raise _too_large(self.uri(key), size, max_bytes)
            data = body.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise _too_large(self.uri(key), len(data), max_bytes)
            return data
        finally:
            body.close()

    def download(self, key: str, path: Path) -> None:
        target = Path(path)
        body = self._get(key)["Body"]
        tmp = None
        try:
            with disk_writes(f"download {self.uri(key)} to {target}", target.parent):  # a full disk says so
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
                with os.fdopen(fd, "wb") as fh:
                    for chunk in iter(lambda: body.read(_CHUNK), b""):
                        fh.write(chunk)
                os.replace(tmp, target)
        except BaseException:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            call(self.s3, "head_object", what=self._what("check", key), settings=self.clients.settings,
                 Bucket=self.require_bucket(), Key=self.full_key(key))
            return True
        except AwsError as exc:
            if exc.code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def _full_keys(self, prefix: str) -> list[str]:
        return [obj["Key"] for obj in self._objects(prefix)]

    def _objects(self, prefix: str) -> list[dict]:
        if prefix.strip("/"):
            full = self.full_key(prefix.rstrip("/") + "/")
        else:
            full = f"{self.prefix}/" if self.prefix else ""
        keys: list[dict] = []
        token = None
        while True:
            kwargs = {"Bucket": self.require_bucket(), "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = call(
                self.s3,
                "list_objects_v2",
                what=f"list s3://{self.bucket}/{full}",
                settings=self.clients.settings,
                **kwargs,
            )
            keys.extend(page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return keys

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def list(self, prefix: str) -> list[str]:
        return sorted(self._relative(k) for k in self._full_keys(prefix))

    def sizes(self, prefix: str) -> list[tuple[str, int, float]]:
        """(key, bytes, last modified) of every object under ``prefix`` (from the listing: no object is read)."""
        return sorted((self._relative(o["Key"]), int(o.get("Size") or 0),
                       o["LastModified"].timestamp() if o.get("LastModified") else 0.0) for o in self._objects(prefix))

    def delete_prefix(self, prefix: str) -> int:
        keys = self._full_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            answer = call(
                self.s3,
                "delete_objects",
                what=f"delete {len(batch)} objects under {self.uri(prefix)}",
                settings=self.clients.settings,
                Bucket=self.require_bucket(),
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise AwsError(
                    f"S3 refused to delete {plural(len(errors), 'object')} under {self.uri(prefix)} "
                    f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}). "
                    "Check s3:DeleteObject in your policy (docs/aws.md).",
                    str(first.get("Code", "")),
                    "DeleteObjects",
                    str(first.get("Message", "")),
                )
        return len(keys)
