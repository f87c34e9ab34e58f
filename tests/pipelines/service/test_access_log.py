"""The access log of a real server: what its entries carry, `consentgen access-log` through
the service and from the file, `--since`, and tamper detection like the ledger's.

One server for the module makes the log; the tamper tests stop it and edit copies of the
home's `access.duckdb` directly with DuckDB, as someone covering their tracks would.
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.pipelines.cli.console import ok, run
from tests.pipelines.service.server import Service, serving

PURPOSE = "synthetic-training"


def grant(subject: str, n: int) -> dict[str, Any]:
    return {"subject_id": subject, "purpose": PURPOSE, "action": "grant",
            "event_id": f"al-{n}", "effective_at": "2026-01-05T09:00:00Z"}


@dataclass
class Made:
    home: Path
    entries: list[dict[str, Any]]  # the whole log, read through the API before the stop
    cli_up: str  # `consentgen access-log` while the service ran
    since: str  # a logged_at in the middle
    since_up: str  # `consentgen access-log --since` while the service ran


def all_entries(service: Service) -> list[dict[str, Any]]:
    with service.owner() as http:
        return http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    home = tmp_path_factory.mktemp("access-log") / "home"
    ok(home, "init")
    with serving(home) as service:
        writer = service.token("consent-writer", "cmp-writer")
        with service.client(writer) as http:
            assert http.post("/v1/consent/events",
                             json=[grant("s1", 1), grant("s2", 2)]).status_code == 201
        with service.as_role("auditor") as http:
            assert http.get("/v1/consent/subjects/s1",
                            params={"purpose": PURPOSE}).status_code == 200
            assert http.get("/v1/consent/eligible", params={"purpose": PURPOSE}).json() == [
                "s1", "s2"]
        time.sleep(1.2)  # the next commit logs a head (at most one a second)
        with service.client(writer) as http:
            for n in range(3, 9):
                assert http.post("/v1/consent/events",
                                 json=grant(f"s{n}", n)).status_code == 201
            assert http.get("/v1/consent/head").status_code == 403
        with service.client("cg_not-a-token") as http:
            assert http.get("/v1/consent/head").status_code == 401
        time.sleep(1.2)
        with service.client() as http:
            assert http.get("/v1/health").status_code == 200  # its commit logs the last head
        entries = all_entries(service)
        middle = entries[len(entries) // 2]["logged_at"]
        cli_up = ok(home, "access-log")
        since_up = ok(home, "access-log", "--since", middle)
    yield Made(home, entries, cli_up, middle, since_up)


def test_entries_carry_who_what_when_outcome_and_latency(made: Made) -> None:
    posts = [e for e in made.entries if e["token"] == "cmp-writer" and e["method"] == "POST"]
    assert len(posts) == 7
    first = posts[0]
    assert first["role"] == "consent-writer"
    assert first["path"] == "/v1/consent/events" and first["status"] == 201
    assert first["subjects"] == ["s1", "s2"]
    assert first["latency_us"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["logged_at"])
    read = [e for e in made.entries if e["token"] == "test-auditor"
            and e["path"].startswith("/v1/consent/subjects/s1")]
    assert [(r["role"], r["method"], r["status"], r["subjects"]) for r in read] == [
        ("auditor", "GET", 200, ["s1"])]
    assert read[0]["path"] == f"/v1/consent/subjects/s1?purpose={PURPOSE}"
    refused = [(e["token"], e["role"], e["status"]) for e in made.entries
               if e["path"] == "/v1/consent/head"]
    assert refused == [("cmp-writer", "consent-writer", 403), ("-", "-", 401)]
    assert [e["seq"] for e in made.entries] == list(range(1, len(made.entries) + 1))


def rows_of(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if re.match(r"^\s*\d+\s+\d{4}-", line)]


@pytest.mark.parametrize("up", [True, False], ids=["through the service", "from the file"])
def test_the_cli_shows_every_entry_whole(made: Made, up: bool) -> None:
    output = made.cli_up if up else ok(made.home, "access-log")
    rows = rows_of(output)  # the file holds the CLI's own later reads too
    assert [int(r[0]) for r in rows][:len(made.entries)] == [e["seq"] for e in made.entries]
    assert "…" not in output
    line = next(x for x in output.splitlines() if "s1,s2" in x)
    assert "cmp-writer (consent-writer)" in line and "POST /v1/consent/events" in line
    assert " 201 " in line
    assert f"/v1/consent/subjects/s1?purpose={PURPOSE}" in output
    assert f"{len(rows)} entries" in output


@pytest.mark.parametrize("up", [True, False], ids=["through the service", "from the file"])
def test_since_filters(made: Made, up: bool) -> None:
    output = made.since_up if up else ok(made.home, "access-log", "--since", made.since)
    seqs = [int(r[0]) for r in rows_of(output)]
    since = datetime.fromisoformat(made.since)
    later = [e["seq"] for e in made.entries if datetime.fromisoformat(e["logged_at"]) >= since]
    assert seqs[:len(later)] == later
    assert min(seqs) == later[0] > 1
    done = run(made.home, "access-log", "--since", "2026-01-01T00:00:00")
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1


def test_an_intact_log_verifies_and_prints_its_head(made: Made) -> None:
    output = ok(made.home, "access-log", "--verify")
    with duckdb.connect(str(made.home / "access.duckdb"), read_only=True) as con:
        seq, digest = con.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC "
                                  "LIMIT 1").fetchone()
    assert output.strip() == f"access log intact: head {seq} {digest}"


def _swap(con: duckdb.DuckDBPyConnection, a: int, b: int) -> int:
    con.execute("UPDATE access_log SET seq = -1 WHERE seq = ?", [a])
    con.execute("UPDATE access_log SET seq = ? WHERE seq = ?", [a, b])
    con.execute("UPDATE access_log SET seq = ? WHERE seq = -1", [b])
    return a


def _truncate_beyond_a_head(con: duckdb.DuckDBPyConnection, _: int) -> int:
    heads = [s for (s,) in con.execute("SELECT seq FROM access_heads ORDER BY seq").fetchall()]
    assert len(heads) >= 2, heads  # the service logs one a second: the sleeps made two
    cut = heads[-2]
    con.execute("DELETE FROM access_log WHERE seq > ?", [cut])
    return cut + 1


TAMPER: dict[str, Callable[[duckdb.DuckDBPyConnection, int], int]] = {
    "a changed status": lambda con, n: con.execute(
        "UPDATE access_log SET status = 200 WHERE seq = ?", [n]) and n,
    "a changed subject list": lambda con, n: con.execute(
        "UPDATE access_log SET subjects = ['someone-else'] WHERE seq = ?", [n]) and n,
    "a deleted middle row": lambda con, n: con.execute(
        "DELETE FROM access_log WHERE seq = ?", [n]) and n,
    "two rows' seq swapped": lambda con, n: _swap(con, n, n + 3),
    "the tail beyond a recorded head deleted": _truncate_beyond_a_head,
    "the heads table dropped": lambda con, n: con.execute(
        "DROP TABLE access_heads") and 1,
}


@pytest.mark.parametrize("how", list(TAMPER), ids=list(TAMPER))
def test_tampering_is_caught_naming_the_first_bad_sequence(made: Made, tmp_path: Path,
                                                           how: str) -> None:
    copy = tmp_path / "home"
    shutil.copytree(made.home, copy, ignore=shutil.ignore_patterns("service.json"))
    with duckdb.connect(str(copy / "access.duckdb")) as con:
        bad = TAMPER[how](con, 4)
    done = run(copy, "access-log", "--verify")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"access log integrity broken at sequence {bad}:" in lines[0]
    assert done.stdout.strip() == ""
