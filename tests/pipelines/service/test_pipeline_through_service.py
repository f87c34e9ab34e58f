"""The pipeline while `consentgen serve` holds the ledger: the reconcile, the erasure
record, a build's snapshot and eligibility, and the Dagster resource read (and a revoke
appends) through the service, with the answers they give on the file."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consent import Ledger
from consent.owner import LedgerOwner
from consent.state import OPERATOR_WITHDRAWAL_SOURCE
from consentgen.errors import LedgerIntegrityError
from consentgen.home import ledger_path
from pipelines.catalog import Catalog, Release, Withdrawal
from pipelines.defs.resources import DataHome, LedgerResource
from pipelines.service.client import ledger_at
from pipelines.service.remote_ledger import ServiceLedger
from pipelines.steps.snapshot import take_snapshot
from tests.pipelines.cli.console import ok, run
from tests.pipelines.conftest import Deployment
from tests.pipelines.service.server import Service, serving
from tests.pipelines.steps.published import PURPOSE, publish_rows

T1 = "2026-01-05T09:00:00Z"


def _post(service: Service, *events: dict) -> dict:
    with service.as_role("consent-officer") as http:
        answer = http.post("/v1/consent/events", json=list(events))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _head(service: Service) -> dict:
    with service.as_role("auditor") as http:
        return http.get("/v1/consent/head").json()


def _cli_paths(service: Service) -> set[str]:
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
    return {e["path"].split("?")[0] for e in entries if e["token"] == "local-cli"}


def test_reconcile_erasure_and_revoke_on_the_cli_go_through_the_service(home: Path) -> None:
    pub = publish_rows(home)  # m0 saw A, B, C; m1 saw D, E, F; 8 images each in v0001 + v0002
    with serving(home) as service:
        quiet = json.loads(ok(home, "reconcile", "--json", "--profile", "test"))
        assert quiet["count"] == 0 and quiet["ledger_head"] == 6
        # a revoke that takes effect in a moment: the service's withdrawal at once finds
        # nothing yet, so the CLI's reconcile is the one that withdraws
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        _post(service, {"subject_id": "D", "purpose": PURPOSE, "action": "revoke",
                        "event_id": "later-D", "effective_at": soon.isoformat()})
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
        done = json.loads(ok(home, "reconcile", "--json", "--profile", "test"))
        assert done["count"] == 8 and done["ledger_head"] == 7 and done["stale_shards"] == [1]
        assert all(not (pub.folder(i.version) / i.file_name).exists() for i in pub.of_model("m1"))
        record = json.loads(ok(home, "consent", "erasure", "D", "--json"))
        assert [e["event_id"] for e in record["events"]][-1] == "later-D"
        assert sum(w["images"] for w in record["withdrawn"]) == 8

        revoked = ok(home, "consent", "revoke", "B", "-p", PURPOSE)
        assert "recorded #8 revoke B" in revoked
        assert "the consent service withdrew 8 image(s) from v0001 (4), v0002 (4) at once" in revoked
        assert "the rebuild of shard(s) 0 waits for" in revoked
        assert all(not (pub.folder(i.version) / i.file_name).exists() for i in pub.of_model("m0"))
        assert {"/v1/consent/eligible", "/v1/consent/head", "/v1/consent/events"} <= _cli_paths(service)
    by_cause = {(w.subject_id, w.event_seq) for w in pub.catalog.select(Withdrawal)}
    assert by_cause == {("D", 7), ("B", 8)}
    after = json.loads(ok(home, "reconcile", "--json", "--profile", "test"))  # the file again
    assert after["count"] == 0 and after["ledger_head"] == 8


def test_an_operators_withdrawal_goes_through_the_service_with_its_reason(home: Path) -> None:
    pub = publish_rows(home)
    with serving(home) as service:
        by_operator = ok(home, "release", "withdraw", "--subject", "A", "--reason", "by phone",
                         "--actor", "dpo-2")
        assert "recorded #7 revoke of A for synthetic-training by dpo-2" in by_operator
        assert "withdrew 8 image(s) from v0001 (4), v0002 (4)" in by_operator
        assert "the rebuild of shard(s) 0 waits for" in by_operator
        with service.as_role("auditor") as http:
            last = http.get("/v1/consent/events", params={"after_seq": 6}).json()["events"]
        assert [(e["subject_id"], e["actor"], e["source"]) for e in last] == [
            ("A", "dpo-2", OPERATOR_WITHDRAWAL_SOURCE)]
        unknown = run(home, "release", "withdraw", "--subject", "nobody")
        assert unknown.returncode == 1 and "no subject 'nobody'" in unknown.stderr
    rows = pub.catalog.select(Withdrawal)
    assert len(rows) == 8 and {(r.subject_id, r.event_seq, r.note) for r in rows} == {("A", 7, "by phone")}


def test_a_snapshot_reads_the_services_head_and_eligibility(service_home: Path) -> None:
    home = service_home
    catalog = Catalog(home)
    with serving(home) as service:
        _post(service, *({"subject_id": s, "purpose": PURPOSE, "action": "grant",
                          "event_id": f"g-{s}", "effective_at": T1} for s in ("s1", "s2", "s3")))
        _post(service, {"subject_id": "s2", "purpose": PURPOSE, "action": "revoke",
                        "event_id": "r-s2", "effective_at": T1.replace("09:", "10:")})
        with ledger_at(home) as ledger:
            assert isinstance(ledger, ServiceLedger)
            snapshot = take_snapshot(ledger, catalog, PURPOSE)
            head = _head(service)
            assert (snapshot.head_seq, snapshot.head_hash) == (head["seq"], head["hash"]) == (4, head["hash"])
            assert ledger.eligible(PURPOSE, snapshot.taken_at, as_of_seq=snapshot.head_seq) == ["s1", "s3"]
            assert ledger.eligible(PURPOSE, as_of_seq=3) == ["s1", "s2", "s3"]
            assert ledger.state("s2", PURPOSE, as_of_seq=3).granted
            assert not ledger.state("s2", PURPOSE).granted
            served_states = ledger.states(PURPOSE)
        assert ledger.client._http.is_closed  # the with block closed its connections
        resource = LedgerResource(home=DataHome(path=str(home))).ledger()
        assert isinstance(resource, ServiceLedger) and resource.head().seq == 4
        resource.close()
    assert catalog.snapshot(snapshot.snapshot_id).head_seq == 4
    on_file = ledger_at(home)
    assert type(on_file) is Ledger and on_file.verify().hash == snapshot.head_hash
    assert [(s.subject_id, s.status, s.deciding_event) for s in on_file.states(PURPOSE)] == [
        (s.subject_id, s.status, s.deciding_event) for s in served_states]
    assert type(LedgerResource(home=DataHome(path=str(home))).ledger()) is Ledger


def test_a_snapshot_through_the_service_fails_on_a_release_anchor_as_on_the_file(home: Path) -> None:
    publish_rows(home)  # the releases recorded head 6 with a hash no chain has
    with pytest.raises(LedgerIntegrityError) as on_file:
        take_snapshot(ledger_at(home), Catalog(home), PURPOSE)
    with serving(home):
        ledger = ledger_at(home)
        assert isinstance(ledger, ServiceLedger)
        with pytest.raises(LedgerIntegrityError) as served:
            take_snapshot(ledger, Catalog(home), PURPOSE)
    assert str(served.value) == str(on_file.value) and served.value.seq == 6


def test_the_process_that_holds_the_ledger_reads_its_own(home: Path) -> None:
    owner = LedgerOwner(ledger_path(home))  # as the service holds it, in this process
    try:
        assert ledger_at(home) is owner.ledger
    finally:
        owner.close()
    assert type(ledger_at(home)) is Ledger


@pytest.mark.slow
def test_a_build_while_the_service_runs_reads_consent_through_it(deployment: Deployment) -> None:
    from pipelines.defs.runner import run_build

    dep = deployment
    with serving(dep.home) as service:
        _post(service, *({"subject_id": s, "purpose": PURPOSE, "action": "grant",
                          "event_id": f"g-{s}", "effective_at": T1} for s in dep.subjects))
        report = run_build(dep.home, dep.config, instance=dep.instance)
        assert report.success, report.failure
        head = _head(service)
    [release] = dep.catalog.select(Release)
    assert (release.head_seq, release.head_hash) == (head["seq"], head["hash"])
    assert head["seq"] == len(dep.subjects)
