"""Deploy and delete racing on one endpoint name, from two processes: every error is a clear one (conflict or
not found, never a raw '[Errno 17] File exists'), every server process belongs to a catalog row, and
nothing is left running once the endpoint is gone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import churn_core
from tests.support.helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]
RACE_SECONDS = 12.0

RACER = r"""
import json, random, sys, time
import churn_core
from churn_core import ChurnError
name, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
p = churn_core.connect()
result = {"ops": 0, "errors": {}, "unclear": []}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    op = rng.choice(["deploy", "deploy-nowait", "delete", "delete"])
    try:
        if op == "delete":
            p.delete_endpoint(name)
        else:
            p.deploy("model-a", name, wait=op == "deploy", timeout=30)
    except Exception as exc:
        kind = type(exc).__name__
        result["errors"][kind] = result["errors"].get(kind, 0) + 1
        if not isinstance(exc, ChurnError) or kind not in ("ConflictError", "NotFoundError") or "[Errno" in str(exc):
            result["unclear"].append(f"{op}: {kind}: {exc}")
    result["ops"] += 1
print(json.dumps(result))
"""


def endpoint_processes(name: str) -> dict[str, list[int]]:
    """Supervisors and model-server masters/workers of endpoint ``name``, found by what ps shows."""
    found: dict[str, list[int]] = {"supervisor": [], "master": [], "worker": []}
    own = re.compile(rf"--(?:endpoint|name) {re.escape(name)}(?:\s|\]|$)")
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if proc.info["status"] == psutil.STATUS_ZOMBIE or not own.search(line):
                continue
        except psutil.Error:
            continue
        if "endpoint.supervisor" in line:
            found["supervisor"].append(proc.pid)
        elif "gunicorn: worker" in line:
            found["worker"].append(proc.pid)
        elif "churn_core.backends.local.endpoint.server" in line:
            found["master"].append(proc.pid)
    return found


@pytest.mark.slow
def test_deploy_and_delete_racing_on_one_name_leave_nothing_behind(trained):
    p = trained
    name = f"race-{os.getpid()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    racers = [subprocess.Popen([sys.executable, "-c", RACER, name, str(RACE_SECONDS), str(seed)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = []
    try:
        for racer in racers:
            out, err = racer.communicate(timeout=RACE_SECONDS + 120)
            assert racer.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    ops = sum(r["ops"] for r in results)
    unclear = [u for r in results for u in r["unclear"]]
    print(f"{ops} operations; errors by kind: {[r['errors'] for r in results]}")
    assert ops >= 20, results
    assert unclear == [], f"{len(unclear)} unclear errors in {ops} operations: {unclear[:5]}"

    def settled() -> bool:
        """Each process belongs to the catalog's row: one supervisor and one server if it exists, else none."""
        row = p.catalog.one("SELECT status FROM endpoints WHERE name = ?", (name,))
        expected = 1 if row and row["status"] in ("Creating", "InService") else 0
        procs = endpoint_processes(name)
        return len(procs["supervisor"]) == expected and len(procs["master"]) <= expected

    try:
        wait_until(settled, 30, interval=0.2, what=f"only the catalog's endpoint processes to remain: "
                                                    f"{endpoint_processes(name)}")
    finally:
        p.cleanup()
    wait_until(lambda: not any(endpoint_processes(name).values()), 20, interval=0.2,
               what=f"every process of {name} to stop after cleanup: {endpoint_processes(name)}")
    assert name not in p.endpoint_names()
    leftovers = [f for f in (p.settings.home / "endpoints").glob(f"{name}*")]
    assert leftovers == [], leftovers


def test_a_stray_endpoint_process_is_found_and_stopped_by_cleanup(trained):
    """A supervisor and server whose catalog row is gone (a deploy that lost a race, a catalog rebuilt without
    it) are found by what they are and stopped by cleanup()."""
    p = trained
    ep = p.deploy("model-a", "stray-ep")
    assert ep.status == "InService"
    with p.catalog.tx() as conn:  # the row disappears behind the processes' back
        conn.execute("DELETE FROM endpoints WHERE name = 'stray-ep'")
        conn.execute("DELETE FROM endpoint_configs WHERE name = 'stray-ep-config'")
        conn.execute("DELETE FROM deployed_models WHERE name = 'stray-ep-model'")
    removed = p.cleanup()
    assert any(r["endpoint"] == "stray-ep" for r in removed), removed
    wait_until(lambda: not any(endpoint_processes("stray-ep").values()), 20, interval=0.2,
               what="the stray endpoint's processes to stop")


def test_a_supervisor_whose_row_is_gone_stops_by_itself(trained):
    p = trained
    ep = p.deploy("model-a", "self-stop-ep")
    assert ep.status == "InService"
    started = time.monotonic()
    with p.catalog.tx() as conn:
        conn.execute("DELETE FROM endpoints WHERE name = 'self-stop-ep'")
    try:
        wait_until(lambda: not any(endpoint_processes("self-stop-ep").values()), 20, interval=0.2,
                   what="the supervisor to notice its row is gone and stop its server")
        assert not psutil.pid_exists(ep.server_pid) or psutil.Process(ep.server_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        p.cleanup()
    assert time.monotonic() - started >= 0  # (no timing claim: only that it happened within the bound above)


def test_a_deploy_whose_endpoint_is_deleted_meanwhile_is_a_conflict(trained):
    p = trained
    churn = churn_core.connect()
    ep = p.deploy("model-a", "gone-meanwhile", wait=False)
    churn.delete_endpoint("gone-meanwhile")
    with pytest.raises(churn_core.ConflictError, match="deleted .* while it was being deployed"):
        p.wait_for_endpoint(ep.name, timeout=10, uid=ep.uid)  # what deploy(wait=True) does


def test_a_delete_that_takes_the_folder_while_the_deploy_writes_in_it_is_a_conflict(trained, monkeypatch):
    """Found by the race test in a fresh clone: the other session's delete removed the deploy's folder between
    its creation and the manifest written into it; the deploy said 'Could not deploy: [Errno 2] ...'."""
    p = trained
    churn = churn_core.connect()
    from churn_core.backends.local import backend as local

    original = local.write_text

    def deleted_meanwhile(path, text):
        if path.name != "endpoint.json":
            return original(path, text)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text)
        churn.delete_endpoint("folder-gone")  # another session, between the write and the rename
        shutil.rmtree(path.parent, ignore_errors=True)
        os.replace(temp, path)  # FileNotFoundError, as in the race

    monkeypatch.setattr(local, "write_text", deleted_meanwhile)
    with pytest.raises(churn_core.ConflictError, match="deleted .*by another session while it was being deployed"):
        p.deploy("model-a", "folder-gone")
    monkeypatch.undo()
    assert "folder-gone" not in [e.name for e in p.list_endpoints()]
    ep = p.deploy("model-a", "folder-gone")  # and the name is free again
    assert ep.status == "InService"
    p.delete_endpoint("folder-gone")


def test_an_update_probe_in_an_endpoint_folder_is_found_as_a_probe(tmp_path):
    """The probe an update runs in the endpoint's folder is one of its processes (a delete stops it too), but
    not its model server (a catalog rebuild must not take it for the gunicorn master)."""
    from churn_core.backends.local.endpoint import processes as found_by

    folder = tmp_path / "endpoints" / f"probe-ep.{'a' * 32}"
    folder.mkdir(parents=True)
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                              "churn_core.backends.local.endpoint.server", "--probe"],
                             cwd=folder, start_new_session=True)
    try:
        seen = wait_until(lambda: [p for p in found_by.find(tmp_path) if p.pid == probe.pid], 10, interval=0.05,
                          what="the probe to be found")
        assert (seen[0].role, seen[0].name, seen[0].uid) == ("probe", "probe-ep", "a" * 32)
        assert found_by.stop(seen) == [probe.pid]
        assert probe.wait(timeout=10) is not None
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
