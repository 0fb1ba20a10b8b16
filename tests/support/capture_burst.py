"""A worker process of a local endpoint's capture, without the server: ``python -m tests.support.capture_burst
<bucket> <workdir> <records> <rows> <max_mb>`` puts that many records (each ``rows`` customers, like an
endpoint's answered requests) into a CaptureWriter and flushes in small batches, as a worker's writer thread
does. Several at once are the workers of one endpoint sharing its budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from churn_core.backends.local.endpoint.capture_writer import CaptureWriter
from churn_core.monitoring.capture_bounds import CaptureBounds


def record(rows: int, seed: int) -> tuple[bytes, bytes]:
    request = json.dumps({"instances": [{"customerID": f"{seed}-{i}", "tenure": i % 72, "Contract": "One year"}
                                        for i in range(rows)]}).encode()
    answer = json.dumps({"predictions": [{"label": 0, "churn_probability": 0.25} for _ in range(rows)]}).encode()
    return request, answer


def main(argv: list[str]) -> None:
    bucket, workdir, records, rows, max_mb = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3]), float(argv[4])
    writer = CaptureWriter(bucket, "burst-ep", workdir=workdir, bounds=CaptureBounds(max_mb=max_mb, min_free_mb=0))
    for n in range(records):
        request, answer = record(rows, n)
        writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=rows)
        if n % 5 == 4:
            writer.flush()
    writer.flush()
    print(json.dumps({"written": writer.written, "dropped": writer.dropped, "dropped_rows": writer.dropped_rows}))


if __name__ == "__main__":
    main(sys.argv[1:])
