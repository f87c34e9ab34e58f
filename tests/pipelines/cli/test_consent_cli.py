"""The `consentgen` CLI through its real console-script entry point."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.pipelines.cli.console import ok, run

P = "synthetic-training"


def test_the_documented_forms(home: Path, tmp_path: Path) -> None:
    assert "consent.duckdb" in ok(home, "init")
    ok(home, "consent", "grant", "alice", "--purpose", P, "--at", "2026-01-01T00:00:00Z",
       "--expires", "2030-01-01T00:00:00Z", "--event-id", "form-1", "--actor", "officer-7",
       "--source", "form-v3")
    ok(home, "consent", "grant", "bob", "--purpose", P, "--at", "2026-01-01T00:00:00Z")
    ok(home, "consent", "revoke", "bob", "--purpose", P, "--at", "2026-02-01T00:00:00Z",
       "--event-id", "rev-1")

    granted = ok(home, "consent", "status", "alice", "--purpose", P)
    assert granted.startswith("granted") and "form-1" in granted
    refused = ok(home, "consent", "status", "bob", "--purpose", P)  # exit 0 either way
    assert refused.startswith("not granted") and "rev-1" in refused
    before = ok(home, "consent", "status", "bob", "--purpose", P, "--at", "2026-01-15T00:00:00Z")
    assert before.startswith("granted")
    assert ok(home, "consent", "eligible", "--purpose", P).splitlines() == ["alice"]
    assert ok(home, "consent", "eligible", "--purpose", P, "--at", "2026-01-15T00:00:00Z").split() == [
        "alice", "bob"]

    events = tmp_path / "more.csv"
    events.write_text("subject_id,purpose,action,effective_at\ncarol,synthetic-training,grant,2026-01-01T00:00:00Z\n")
    assert "1 appended, 0 already recorded" in ok(home, "consent", "import", str(events))
    for fmt, name in [("jsonl", "e.jsonl"), ("parquet", "e.parquet"), ("iso27560", "r.jsonl")]:
        ok(home, "consent", "export", "--format", fmt, "-o", str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 0
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 4
    statuses = {json.loads(x)["pii_principal_id"]: json.loads(x)["consent_status"]
                for x in (tmp_path / "r.jsonl").read_text().splitlines()}
    assert statuses == {"alice": "dpv:ConsentGiven", "bob": "dpv:ConsentWithdrawn",
                        "carol": "dpv:ConsentGiven"}

    assert "ledger intact: head 4" in ok(home, "consent", "verify")
    log = ok(home, "consent", "log", "--subject", "bob")
    assert "rev-1" in log and "alice" not in log and "2 event(s)" in log


def test_tampering_makes_verify_fail_with_the_sequence(home: Path) -> None:
    ok(home, "init")
    for subject in ("a", "b", "c"):
        ok(home, "consent", "grant", subject, "--purpose", P)
    con = duckdb.connect(str(home / "consent.duckdb"))
    con.execute("UPDATE events SET subject_id = 'z' WHERE seq = 2")
    con.close()
    result = run(home, "consent", "verify")
    assert result.returncode != 0
    assert "sequence 2" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["consent", "grant", "alice", "--purpose", P, "--at", "2026-01-01T00:00:00"], "no time zone"),
        (["consent", "grant", "alice", "--purpose", "Bad Purpose"], "purpose"),
        (["consent", "grant", "", "--purpose", P], "subject_id"),
        (["consent", "import", "/nonexistent/events.csv"], "no such file"),
        (["consent", "export", "--format", "xml", "-o", "x.xml"], "unknown export format"),
    ],
)
def test_errors_are_one_line_on_stderr(home: Path, args: list[str], message: str) -> None:
    ok(home, "init")
    result = run(home, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_conflicting_event_id_leaves_the_ledger_unchanged(home: Path) -> None:
    ok(home, "init")
    ok(home, "consent", "grant", "alice", "--purpose", P, "--event-id", "e1")
    result = run(home, "consent", "revoke", "alice", "--purpose", P, "--event-id", "e1")
    assert result.returncode != 0 and "e1" in result.stderr
    assert "head 1" in ok(home, "consent", "verify")


def test_bad_import_reports_every_line(home: Path, tmp_path: Path) -> None:
    ok(home, "init")
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,purpose,action,effective_at\n"
                   "alice,synthetic-training,grant,2026-01-01T00:00:00Z\n"
                   ",synthetic-training,grant,2026-01-01T00:00:00Z\n"
                   "bob,synthetic-training,perhaps,2026-01-01T00:00:00Z\n"
                   "carol,synthetic-training,grant,\n")
    result = run(home, "consent", "import", str(bad))
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "line 3" in result.stderr and "line 4" in result.stderr and "nothing imported" in result.stderr
    assert "line 5: effective_at is required in an import" in result.stderr
    assert "line 2" not in result.stderr
    assert ok(home, "consent", "eligible", "--purpose", P) == ""


def test_a_grown_export_never_grants_again_after_a_revoke(home: Path, tmp_path: Path) -> None:
    """The consent platform's export, re-imported as it grows: each run appends only the
    new lines, and the old grant stays before the revoke."""
    ok(home, "init")
    export_file = tmp_path / "cmp.csv"
    lines = ["subject_id,purpose,action,effective_at,actor\n",
             f"dave,{P},grant,2026-01-01T00:00:00Z,cmp\n",
             f"dave,{P},revoke,2026-02-01T00:00:00Z,cmp\n"]
    export_file.write_text("".join(lines))
    assert ok(home, "consent", "import", str(export_file)).startswith("2 appended, 0 already")
    lines.append(f"erin,{P},grant,2026-03-01T00:00:00Z,cmp\n")
    export_file.write_text("".join(lines))
    assert ok(home, "consent", "import", str(export_file)).startswith("1 appended, 2 already")
    assert ok(home, "consent", "eligible", "--purpose", P).split() == ["erin"]
    assert ok(home, "consent", "status", "dave", "--purpose", P).startswith("not granted")
