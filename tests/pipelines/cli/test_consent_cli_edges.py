"""The ledger's edges through the real console script: each a clear line, never a
traceback, a hang or a wedged ledger (issue 13, section 8)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from consent import Ledger
from consent.canonical import HASH_SQL
from pipelines.catalog import Catalog, Release
from tests.pipelines.cli.console import ok, run

P = "synthetic-training"


def one_line_error(home: Path, *args: str, timeout: float = 120) -> str:
    """The single stderr line of a failing command (the test fails otherwise)."""
    done = run(home, *args, timeout=timeout)
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture
def initialised(home: Path) -> Path:
    ok(home, "init")
    return home


def test_times_outside_the_range_are_one_line_naming_the_option(initialised: Path) -> None:
    home = initialised
    assert "--at 0999-06-01" in one_line_error(home, "consent", "grant", "x", "--purpose", P,
                                               "--at", "0999-06-01T00:00:00Z")
    line = one_line_error(home, "consent", "grant", "x", "--purpose", P,
                          "--at", "9999-12-31T23:59:59-01:00")
    assert "--at 9999-12-31T23:59:59-01:00 is outside the ledger's range 1900-01-01..2999-12-31" in line
    assert "--expires" in one_line_error(home, "consent", "grant", "x", "--purpose", P,
                                         "--expires", "3000-01-01T00:00:00Z")
    assert "--at" in one_line_error(home, "consent", "status", "x", "--purpose", P,
                                    "--at", "9999-12-31T23:59:59-01:00")
    assert "ledger intact: head 0" in ok(home, "consent", "verify")


def test_imports_read_regular_files_only(initialised: Path, tmp_path: Path) -> None:
    """A FIFO would hang the import, a link to /dev/zero read into a MemoryError: each is
    refused at once (the subprocess's timeout is what would catch a hang)."""
    home = initialised
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:  # sparse: 257 MiB on paper, nothing on disk
        fh.truncate(257 * 1024 * 1024)
    try:
        line = one_line_error(home, "consent", "import", str(fifo), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("importing a FIFO hung")
    assert "FIFO" in line and "regular files only" in line
    line = one_line_error(home, "consent", "import", str(zero), timeout=60)
    assert "-> /dev/zero" in line and "character device" in line
    assert "a directory" in one_line_error(home, "consent", "import", str(folder))
    assert "over the import limit of 268,435,456" in one_line_error(home, "consent", "import", str(big))
    assert "ledger intact: head 0" in ok(home, "consent", "verify")


def test_verify_with_the_heads_table_dropped_names_it(initialised: Path) -> None:
    home = initialised
    ledger = Ledger.at_home(home)
    for subject in ("a", "b"):
        ledger.grant(subject, P)
    con = duckdb.connect(str(ledger.path))
    con.execute("DROP TABLE heads")
    con.close()
    line = one_line_error(home, "consent", "verify")
    assert "sequence 1" in line and "the heads table is missing" in line
    assert "damaged (the heads table is missing)" in one_line_error(home, "consent", "grant", "c",
                                                                    "--purpose", P)


def test_spoofed_subject_ids_are_refused_and_nfd_is_nfc(initialised: Path) -> None:
    home = initialised
    assert "U+202E" in one_line_error(home, "consent", "grant", "\u202eecila", "--purpose", P)
    assert "U+200B" in one_line_error(home, "consent", "grant", "\u200b", "--purpose", P)
    ok(home, "consent", "grant", "jose\u0301", "--purpose", P)
    assert ok(home, "consent", "status", "jos\u00e9", "--purpose", P).startswith("granted")
    assert ok(home, "consent", "eligible", "--purpose", P).splitlines() == ["jos\u00e9"]


def rewrite_consistently(path: Path, seq: int, subject: str) -> None:
    """Edit one event, then re-hash it and every later one and the heads log: what a
    tamperer with write access and the (public) chain code can do."""
    con = duckdb.connect(str(path))
    con.execute("UPDATE events SET subject_id = ? WHERE seq = ?", [subject, seq])
    last = con.execute("SELECT max(seq) FROM events").fetchall()[0][0]
    for s in range(seq, last + 1):
        con.execute(f"UPDATE events SET hash = (SELECT {HASH_SQL} FROM events WHERE seq = $s) "
                    "WHERE seq = $s", {"s": s})
        con.execute("UPDATE events SET prev_hash = (SELECT hash FROM events WHERE seq = $s) "
                    "WHERE seq = $s + 1", {"s": s})
    con.execute("UPDATE heads SET hash = (SELECT e.hash FROM events e WHERE e.seq = heads.seq)")
    con.close()


def test_consent_verify_anchors_on_the_heads_releases_recorded(initialised: Path) -> None:
    home = initialised
    ledger = Ledger.at_home(home)
    for subject in ("a", "b", "c"):
        ledger.grant(subject, P)
    head = ledger.verify()
    Catalog(home).add([Release(version="v0001", snapshot_id="snap-1", head_seq=head.seq,
                               head_hash=head.hash, n_images=0, release_path=str(home / "releases/v0001"),
                               created_at=datetime.now(UTC))])
    assert "the heads of 1 release(s) are in it" in ok(home, "consent", "verify")
    ledger.grant("d", P)

    rewrite_consistently(ledger.path, 2, "z")
    assert {e.subject_id for e in ledger.events()} == {"a", "z", "c", "d"}
    assert ledger.verify().seq == 4  # the chain and its own heads log agree with themselves
    assert "ledger intact: head 4" in ok(home, "consent", "verify", "--no-releases")
    line = one_line_error(home, "consent", "verify")
    assert "NOT intact" in line and "sequence 3" in line
    assert "the head release v0001 recorded (sequence 3) no longer matches the chain" in line
