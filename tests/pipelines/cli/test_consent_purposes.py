"""Declared purposes and data homes, through the console script.

A grant or revoke for a purpose the build file does not declare is refused in one line
and appends nothing; `--new-purpose` declares it (keeping the file's comments); only
`consentgen init` creates a home, so a mistyped `CONSENTGEN_HOME` writes nothing anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consent import Ledger
from pipelines.buildfile import declared_purposes, load_config
from pipelines.settings import PROFILES

from tests.pipelines.cli.console import ok, run

P = "synthetic-training"
TYPO = "synthetic-trainig"
T = "2026-01-01T00:00:00Z"


def refused(home: Path, *args: str) -> str:
    """The one line on stderr of a command that must fail."""
    done = run(home, *args)
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def ledger_bytes(home: Path) -> bytes:
    return (home / "consent.duckdb").read_bytes()


def test_init_writes_a_build_file_that_reads_back_to_the_demo_preset(home: Path) -> None:
    out = ok(home, "init")
    build_file = home / "consentgen.toml"
    assert f"build file {build_file} (written)" in out and "purposes   synthetic-training" in out
    assert build_file.read_text().startswith("#")
    assert load_config(None, home=home) == PROFILES["demo"]()
    build_file.write_text(build_file.read_text().replace("# shards = 4", "shards = 3"))
    assert "(kept as it was)" in ok(home, "init")  # never overwritten
    assert load_config(None, home=home).shards == 3


def test_an_undeclared_purpose_is_refused_and_nothing_is_appended(home: Path, tmp_path: Path) -> None:
    ok(home, "init")
    ok(home, "consent", "grant", "alice", "--purpose", P)
    before = ledger_bytes(home)
    line = refused(home, "consent", "grant", "alice", "--purpose", TYPO)
    assert line == (f"error: purpose '{TYPO}' is not declared (declared: {P}); add it to purposes "
                    f"in {home / 'consentgen.toml'} or pass --new-purpose")
    assert "is not declared (declared: synthetic-training)" in refused(
        home, "consent", "revoke", "alice", "--purpose", TYPO)
    events = tmp_path / "events.csv"
    events.write_text(f"subject_id,purpose,action,effective_at\nbob,{P},grant,{T}\ncarol,{TYPO},grant,{T}\n")
    line = refused(home, "consent", "import", str(events))
    assert "nothing imported" in line and f"'{TYPO}' is not declared" in line
    line = refused(home, "release", "withdraw", "--subject", "alice", "--purpose", TYPO)
    assert f"'{TYPO}' is not declared" in line and "--new-purpose" not in line
    assert ledger_bytes(home) == before
    assert "ledger intact: head 1" in ok(home, "consent", "verify")
    assert ok(home, "consent", "eligible", "--purpose", P).split() == ["alice"]
    note = run(home, "consent", "status", "alice", "--purpose", TYPO)
    assert note.stdout.startswith("not granted") and "is not declared" in note.stderr


def test_new_purpose_declares_it_and_keeps_the_comments(home: Path, tmp_path: Path) -> None:
    ok(home, "init")
    build_file = home / "consentgen.toml"
    build_file.write_text("# our own note: keep me\n" + build_file.read_text()
                          + "# a closing remark\n")
    comments = [line for line in build_file.read_text().splitlines() if line.startswith("#")]
    out = ok(home, "consent", "grant", "alice", "--purpose", "research", "--new-purpose")
    assert f"declared purpose research in {build_file}" in out
    assert f"ledger {home / 'consent.duckdb'}" in out
    text = build_file.read_text()
    assert [line for line in text.splitlines() if line.startswith("#")] == comments
    assert load_config(None, home=home) == PROFILES["demo"]().model_copy(
        update={"purposes": [P, "research"]})
    ok(home, "consent", "revoke", "alice", "--purpose", "research")  # declared now: no flag
    events = tmp_path / "more.jsonl"
    events.write_text('{"subject_id": "bob", "purpose": "audit-study", "action": "grant", '
                      f'"effective_at": "{T}"}}\n')
    assert "1 appended" in ok(home, "consent", "import", str(events), "--new-purpose")
    assert declared_purposes(home) == [P, "research", "audit-study"]
    assert text.replace('"research"]', '"research", "audit-study"]') == build_file.read_text()


def test_a_revoke_of_consent_on_record_is_never_refused(home: Path) -> None:
    """Withdrawing consent the subject gave goes through even after its purpose was
    taken out of the build file."""
    ok(home, "init")
    ok(home, "consent", "grant", "alice", "--purpose", "research", "--new-purpose")
    build_file = home / "consentgen.toml"
    build_file.write_text(build_file.read_text().replace(', "research"', ""))
    assert declared_purposes(home) == [P]
    assert "is not declared" in refused(home, "consent", "grant", "bob", "--purpose", "research")
    assert "is not declared" in refused(home, "consent", "revoke", "bob", "--purpose", "research")
    ok(home, "consent", "revoke", "alice", "--purpose", "research")
    assert Ledger.at_home(home).eligible("research") == []


def test_a_home_without_a_build_file_declares_what_its_ledger_holds(home: Path) -> None:
    """Homes made before build files keep working: the default purpose and every purpose
    on their ledger are declared; declaring another writes a small build file."""
    ledger = Ledger.at_home(home)
    ledger.grant("alice", "legacy-study")
    assert declared_purposes(home) == [P, "legacy-study"]
    ok(home, "consent", "grant", "bob", "--purpose", "legacy-study")
    assert "(declared: synthetic-training, legacy-study)" in refused(
        home, "consent", "grant", "bob", "--purpose", "other")
    assert not (home / "consentgen.toml").exists()
    ok(home, "consent", "grant", "bob", "--purpose", "other", "--new-purpose")
    assert load_config(None, home=home).purposes == [P, "legacy-study", "other"]


def test_a_csv_imported_twice_is_appended_once(home: Path, tmp_path: Path) -> None:
    ok(home, "init")
    events = tmp_path / "cmp-export.csv"
    events.write_text("subject_id,purpose,action,effective_at,actor\n"
                      f"alice,{P},grant,2026-01-01T00:00:00Z,cmp\n"
                      f"bob,{P},grant,2026-01-02T00:00:00Z,cmp\n"
                      f"alice,{P},revoke,2026-02-01T00:00:00Z,cmp\n")
    first = ok(home, "consent", "import", str(events))
    assert first.startswith("3 appended, 0 already recorded; ledger " + str(home / "consent.duckdb"))
    again = ok(home, "consent", "import", str(events))
    assert again.startswith("0 appended, 3 already recorded")
    assert "ledger intact: head 3" in ok(home, "consent", "verify")


COMMANDS = [
    ["consent", "grant", "alice", "--purpose", P],
    ["consent", "revoke", "alice", "--purpose", P],
    ["consent", "status", "alice", "--purpose", P],
    ["consent", "import", "{events}"],
    ["consent", "log"],
    ["consent", "erasure", "alice"],
    ["ingest", "{folder}", "--subject-from-tag", "PatientID"],
    ["build", "--profile", "test"],
    ["reconcile"],
    ["release", "list"],
    ["release", "withdraw", "--subject", "alice"],
    ["ui", "--port", "1"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:2]) for a in COMMANDS])
def test_a_missing_home_is_refused_and_nothing_is_created(tmp_path: Path, args: list[str]) -> None:
    events = tmp_path / "events.csv"
    events.write_text(f"subject_id,purpose,action,effective_at\nalice,{P},grant,{T}\n")
    (tmp_path / "incoming").mkdir()
    args = [a.format(events=events, folder=tmp_path / "incoming") for a in args]
    mistyped = tmp_path / "no-such" / "home"
    assert refused(mistyped, *args) == f"error: no data home at {mistyped} (run `consentgen init`)"
    assert not mistyped.parent.exists()
    empty = tmp_path / "empty"  # a folder, but no home: nothing is written into it either
    empty.mkdir()
    assert f"no data home at {empty}" in refused(empty, *args)
    assert list(empty.iterdir()) == []
