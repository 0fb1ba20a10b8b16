"""Issue 26, item 5: a version rejected while a deploy, an update, a variant split or a promotion runs never
serves. The approval rule is asked again in the transaction that commits the change (and by the backend just
before the new models take traffic); a refused update rolls back, saying why; aliases move with the traffic."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

import churn_core
from churn_core import ConflictError
from churn_core.backends.local.endpoint.control import read_control


def served_sha(p, endpoint: str) -> set[str]:
    """What the endpoint's model server is told to serve (its control file): the artifacts' SHA-256."""
    return {v.sha256 for v in read_control(Path(p.describe_endpoint(endpoint).workdir)).variants}


def fresh_version(p, model: str) -> int:
    version = p.register(model, group="subs").version
    p.approve("subs", version, "good enough")
    return version


def sha_of(p, version: int) -> str:
    return p.get_version("subs", version).artifact_sha256


def test_a_version_rejected_while_the_update_probes_never_serves(registry_with_two_versions):
    p = registry_with_two_versions
    p.deploy_version("subs", 1, "probe-ep")
    target = fresh_version(p, "subs-lr")
    probe = p.backend._probe

    def probe_then_reject(endpoint, variant):
        probe(endpoint, variant)
        churn_core.connect().reject("subs", target, "leaks PII")  # another session, during the probe

    p.backend._probe = probe_then_reject
    try:
        with pytest.raises(ConflictError, match=rf"subs v{target}.* is rejected.*keeps serving subs v1"):
            p.update_endpoint("probe-ep", "subs", target)
    finally:
        del p.backend._probe
    ep = p.describe_endpoint("probe-ep")
    assert ep.status == "InService" and [v["version"] for v in ep.variants] == ["subs v1"]
    assert "rejected" in ep.failure_reason and "rolled back" in ep.failure_reason
    assert served_sha(p, "probe-ep") == {sha_of(p, 1)}, "the rejected model never took traffic"
    p.delete_endpoint("probe-ep")


def test_a_rejection_committed_after_the_switch_but_before_the_update_commits_is_undone(registry_with_two_versions):
    p = registry_with_two_versions
    p.deploy_version("subs", 1, "late-ep")
    target = fresh_version(p, "subs-lr")
    switch, calls = p.backend._switch, []

    def switch_then_reject(endpoint, control):
        switch(endpoint, control)
        if not calls:
            calls.append(1)
            churn_core.connect().reject("subs", target, "leaks PII")

    p.backend._switch = switch_then_reject
    try:
        with pytest.raises(ConflictError, match=rf"subs v{target}.* is rejected"):
            p.update_endpoint("late-ep", "subs", target)
    finally:
        del p.backend._switch
    ep = p.describe_endpoint("late-ep")
    assert ep.status == "InService" and [v["version"] for v in ep.variants] == ["subs v1"]
    assert served_sha(p, "late-ep") == {sha_of(p, 1)}, "the server was put back on the approved model"
    p.delete_endpoint("late-ep")


def test_a_deploy_rereads_the_approval_where_it_commits(registry_with_two_versions):
    p = registry_with_two_versions
    target = fresh_version(p, "subs-lr")
    get = p.models.get

    def get_then_reject(name):
        churn_core.connect().reject("subs", target, "leaks PII")  # after deployable() said yes
        return get(name)

    p.models.get = get_then_reject
    try:
        with pytest.raises(ConflictError, match=rf"subs v{target}.* is rejected"):
            p.deploy_version("subs", target, "never-ep")
    finally:
        del p.models.get
    assert "never-ep" not in p.endpoint_names()


def test_a_refused_promotion_leaves_the_aliases_where_they_were(registry_with_two_versions):
    """The aliases move after the traffic did: a promotion whose update is refused (the challenger fails its
    probe, or is rejected meanwhile) leaves the champion where it serves."""
    p = registry_with_two_versions
    challenger = fresh_version(p, "subs-lr")
    p.set_alias("subs", 1, "champion")
    p.set_alias("subs", challenger, "challenger")
    p.deploy_version("subs", 1, "promo-ep")
    p.set_variants("promo-ep", [("subs", 1, 90), ("subs", challenger, 10)])

    def failing_switch(endpoint, control):
        raise churn_core.BackendError("a worker did not take the new models")

    p.backend._switch = failing_switch
    try:
        with pytest.raises(churn_core.BackendError, match="was not updated"):
            p.promote_challenger("promo-ep")
    finally:
        del p.backend._switch
    assert p.get_version("subs", "champion").version == 1, "the registry never names a champion that does not serve"
    assert p.get_version("subs", "challenger").version == challenger
    ep = p.describe_endpoint("promo-ep")
    assert sorted(v["version"] for v in ep.variants) == ["subs v1", f"subs v{challenger}"]
    p.reject("subs", challenger, "leaks PII")
    with pytest.raises(ConflictError, match="is rejected"):  # nor can a weight change give it the traffic
        p.set_variants("promo-ep", [("subs", 1, 0), ("subs", challenger, 100)])
    kept = p.set_variants("promo-ep", [("subs", 1, 1)])
    assert [v["version"] for v in kept.variants] == ["subs v1"]
    p.delete_endpoint("promo-ep")


def test_an_update_racing_a_rejection_never_serves_a_version_rejected_before_it_committed(
        registry_with_two_versions):
    """Bounded loop: an update and a rejection from another session, with the rejection landing at a random
    moment of the update. Either the update was refused and the old model serves, or the update committed
    before the rejection did (then the version was Approved when it went live)."""
    p = registry_with_two_versions
    p.deploy_version("subs", 1, "race-ep")
    rng = random.Random(26)
    outcomes = []
    for i in range(4):
        before = served_sha(p, "race-ep")
        target = fresh_version(p, ("subs-lr", "subs-bad")[i % 2])
        errors: list[BaseException] = []

        def update(target: int = target, errors: list = errors) -> None:
            try:
                p.update_endpoint("race-ep", "subs", target)
            except ConflictError as exc:
                errors.append(exc)

        def reject(target: int = target, delay: float = rng.uniform(0.0, 2.5)) -> None:
            time.sleep(delay)
            churn_core.connect().reject("subs", target, "leaks PII")

        threads = [threading.Thread(target=update), threading.Thread(target=reject)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        ep = p.describe_endpoint("race-ep")
        assert ep.status == "InService"
        if errors:
            assert "rejected" in str(errors[0])
            assert served_sha(p, "race-ep") == before and f"subs v{target}" not in [v["version"] for v in ep.variants]
            outcomes.append("refused")
        else:
            assert [v["version"] for v in ep.variants] == [f"subs v{target}"]
            assert served_sha(p, "race-ep") == {sha_of(p, target)}
            went_live = max(e["id"] for e in p.events("endpoint", "race-ep") if "now serving" in e["message"])
            rejected = max(e["id"] for e in p.events("registry", f"subs/v{target}") if "rejected" in e["message"])
            assert went_live < rejected, "it went live while it was still Approved"
            outcomes.append("served, then rejected")
    assert "refused" in outcomes or outcomes, outcomes
    p.delete_endpoint("race-ep")
