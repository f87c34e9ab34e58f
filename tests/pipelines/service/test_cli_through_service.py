"""The command line while `consentgen serve` holds the ledger: every consent command goes
through the service (no 30 s lock wait, no LedgerLockedError) and prints what it prints on
the file; once the service stops, the same commands read the file and see what the
service wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.service.discovery import ServiceInfo, write_info
from tests.pipelines.cli.console import ok, run
from tests.pipelines.service.server import free_port, serving

PURPOSE = "synthetic-training"
T1 = "2026-01-05T09:00:00Z"


def _events_via_api(service) -> list[dict]:
    with service.as_role("auditor") as http:
        answer = http.get("/v1/consent/events", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def _cli_requests(service) -> set[tuple[str, str]]:
    """(method, path) of every request the home's own CLI token made."""
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
    return {(e["method"], e["path"].split("?")[0]) for e in entries if e["token"] == "local-cli"}


def test_consent_commands_go_through_the_service_and_the_file_sees_them_after(
        service_home: Path, tmp_path: Path) -> None:
    home = service_home
    incoming = tmp_path / "incoming.jsonl"
    incoming.write_text(json.dumps({"subject_id": "s2", "purpose": PURPOSE, "action": "grant",
                                    "event_id": "imp-1", "effective_at": T1}) + "\n")
    with serving(home) as service:
        granted = ok(home, "consent", "grant", "s1", "-p", PURPOSE, "--at", T1, "--event-id", "cli-1")
        assert "recorded #1 grant s1 for synthetic-training" in granted
        assert f"ledger {home.resolve() / 'consent.duckdb'} (head 1)" in granted
        again = ok(home, "consent", "grant", "s1", "-p", PURPOSE, "--at", T1, "--event-id", "cli-1")
        assert "already recorded #1 grant s1" in again
        assert ok(home, "consent", "status", "s1", "-p", PURPOSE).startswith("granted (dpv:ConsentGiven")
        imported = ok(home, "consent", "import", str(incoming))
        assert "1 appended, 0 already recorded" in imported and "(head 2 " in imported
        assert ok(home, "consent", "eligible", "-p", PURPOSE).split() == ["s1", "s2"]
        log = ok(home, "consent", "log")
        assert "cli-1" in log and "imp-1" in log and "2 event(s)" in log
        assert ok(home, "consent", "verify").startswith("ledger intact: head 2 ")
        served_jsonl, served_parquet = tmp_path / "served.jsonl", tmp_path / "served.parquet"
        assert "wrote 2 event(s)" in ok(home, "consent", "export", "--format", "jsonl",
                                         "-o", str(served_jsonl))
        ok(home, "consent", "export", "--format", "parquet", "-o", str(served_parquet))
        reimported = ok(home, "consent", "import", str(served_jsonl))
        assert "0 appended, 2 already recorded" in reimported
        revoked = ok(home, "consent", "revoke", "s2", "-p", PURPOSE)
        assert "recorded #3 revoke s2" in revoked
        assert "nothing to withdraw: no published image of s2" in revoked
        init = ok(home, "init")
        assert "(head 3, " in init and f"held by the consent service at {service.url}" in init
        erasure = ok(home, "consent", "erasure", "s2")
        assert "ledger events (2):" in erasure and "revoke for synthetic-training" in erasure

        stored = _events_via_api(service)
        assert [(e["seq"], e["event_id"]) for e in stored][:2] == [(1, "cli-1"), (2, "imp-1")]
        assert [e["action"] for e in stored] == ["grant", "grant", "revoke"]
        assert stored[0]["actor"] == "cli"  # the CLI's own actor, not the token's name
        assert {("POST", "/v1/consent/events"), ("GET", "/v1/consent/verify"),
                ("GET", "/v1/consent/eligible")} <= _cli_requests(service)
        assert json.loads(served_jsonl.read_text().splitlines()[0])["event_id"] == "cli-1"
    assert not (home / "service.json").exists()

    # the service is gone: the file again, with what the service wrote
    assert ok(home, "consent", "status", "s2", "-p", PURPOSE).startswith("not granted (dpv:ConsentWithdrawn")
    assert "3 event(s)" in ok(home, "consent", "log")
    assert ok(home, "consent", "verify").startswith("ledger intact: head 3 ")
    assert "recorded #4 grant s3" in ok(home, "consent", "grant", "s3", "-p", PURPOSE)
    assert "held by the consent service" not in ok(home, "init")
    file_jsonl, file_parquet = tmp_path / "file.jsonl", tmp_path / "file.parquet"
    ok(home, "consent", "export", "--format", "jsonl", "-o", str(file_jsonl))
    ok(home, "consent", "export", "--format", "parquet", "-o", str(file_parquet))
    # an export through the service is the file's export, line for line and cell for cell
    assert file_jsonl.read_text().splitlines()[:2] == served_jsonl.read_text().splitlines()
    file_table, served_table = pq.read_table(file_parquet), pq.read_table(served_parquet)
    assert served_table.schema == file_table.schema
    assert served_table.equals(file_table.slice(0, 2))


def test_a_file_written_while_down_is_read_through_the_service_when_it_is_up(
        service_home: Path) -> None:
    home = service_home
    ok(home, "consent", "grant", "s9", "-p", PURPOSE, "--at", T1)
    with serving(home) as service:
        assert ok(home, "consent", "eligible", "-p", PURPOSE).split() == ["s9"]
        assert "held by the consent service" in ok(home, "init")
        assert ("GET", "/v1/consent/eligible") in _cli_requests(service)


def test_a_service_that_does_not_answer_is_one_line(service_home: Path) -> None:
    home = service_home
    # a live process (this test's) named as the service, on a port nobody listens on
    write_info(home, ServiceInfo(f"http://127.0.0.1:{free_port()}", os.getpid(), "cg_x"))
    done = run(home, "consent", "status", "s1", "-p", PURPOSE)
    assert done.returncode == 1
    assert "does not answer" in done.stderr and f"pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0


def test_verify_names_a_release_anchor_through_the_service_as_on_the_file(home: Path) -> None:
    from tests.pipelines.steps.published import publish_rows

    publish_rows(home)  # its releases recorded head 6 with a hash no chain has
    on_file = run(home, "consent", "verify")
    assert on_file.returncode == 2 and "release v0001" in on_file.stderr
    with serving(home):
        served = run(home, "consent", "verify")
        unanchored = run(home, "consent", "verify", "--no-releases")
    assert served.returncode == 2 and served.stderr == on_file.stderr
    assert unanchored.returncode == 0 and unanchored.stdout.startswith("ledger intact: head 6 ")


def test_a_tampered_chain_is_reported_through_the_service_as_on_the_file(service_home: Path) -> None:
    import duckdb

    home = service_home
    for subject in ("s1", "s2", "s3"):
        ok(home, "consent", "grant", subject, "-p", PURPOSE, "--at", T1)
    con = duckdb.connect(str(home / "consent.duckdb"))
    con.execute("UPDATE events SET actor = 'someone else' WHERE seq = 2")
    con.close()
    on_file = run(home, "consent", "verify", "--no-releases")
    assert on_file.returncode == 2 and "sequence 2" in on_file.stderr
    with serving(home):
        served = run(home, "consent", "verify", "--no-releases")
    assert served.returncode == 2 and served.stderr == on_file.stderr
