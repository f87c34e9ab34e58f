"""`consentgen token create / list / revoke` as an operator runs them: with the service
down (the file directly) and up (through the service), and what the service then does
with the tokens. The token must never be stored or shown again: the bytes of
access.duckdb (and its WAL) are scanned for it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import pytest

from tests.pipelines.cli.console import ok, run
from tests.pipelines.service.server import serving

TOKEN = re.compile(r"cg_[A-Za-z0-9_-]{40,}")


def create(home: Path, role: str, name: str) -> str:
    done = run(home, "token", "create", "--role", role, "--name", name)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and TOKEN.fullmatch(lines[0]), done.stdout
    return lines[0]


def one_line_error(home: Path, *args: str) -> str:
    done = run(home, *args)
    assert done.returncode != 0
    assert done.stdout.strip() == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    return lines[0]


def stored_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("access.duckdb*")) if p.is_file())


def hashes(home: Path) -> dict[str, str]:
    with duckdb.connect(str(home / "access.duckdb"), read_only=True) as con:
        return dict(con.execute("SELECT name, token_hash FROM tokens").fetchall())


def status(service_url: str, token: str) -> int:
    import httpx

    with httpx.Client(base_url=service_url,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        return http.get("/v1/consent/head").status_code


@pytest.mark.parametrize("role", ["owner", "admin", "Auditor", ""])
def test_a_bad_role_is_one_line_error(service_home: Path, role: str) -> None:
    line = one_line_error(service_home, "token", "create", "--role", role, "--name", "x1")
    assert "consent-writer" in line and "reader" in line
    assert "x1" not in ok(service_home, "token", "list")


def test_tokens_with_the_service_down_then_up(service_home: Path) -> None:
    home = service_home
    down = create(home, "auditor", "made-down")
    assert hashes(home) == {"made-down": hashlib.sha256(down.encode()).hexdigest()}
    assert "exists already" in one_line_error(home, "token", "create", "--role", "reader",
                                              "--name", "made-down")
    assert "token name" in one_line_error(home, "token", "create", "--role", "reader",
                                          "--name", "two words")
    listed = ok(home, "token", "list")
    assert "made-down" in listed and "auditor" in listed and not TOKEN.search(listed)
    gone = create(home, "reader", "revoked-down")
    ok(home, "token", "revoke", "revoked-down")
    made = [down, gone]

    with serving(home) as service:
        assert status(service.url, down) == 200  # made in the file, honoured by the service
        assert status(service.url, gone) == 401  # revoked in the file
        up = create(home, "auditor", "made-up")
        made.append(up)
        assert status(service.url, up) == 200
        writer = create(home, "consent-writer", "writer-up")
        made.append(writer)
        assert status(service.url, writer) == 403  # known, but its role may not
        assert "exists already" in one_line_error(home, "token", "create", "--role", "reader",
                                                  "--name", "made-down")
        assert "owner" in one_line_error(home, "token", "create", "--role", "owner",
                                         "--name", "boss")
        listed = ok(home, "token", "list")
        assert all(n in listed for n in ("made-down", "revoked-down", "made-up", "writer-up"))
        assert not TOKEN.search(listed)
        ok(home, "token", "revoke", "made-up")
        assert status(service.url, up) == 401  # at once
        assert status(service.url, down) == 200
        assert "no token named" in one_line_error(home, "token", "revoke", "nobody")
        with service.owner() as http:
            entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
        cli = [(e["method"], e["path"], e["status"]) for e in entries if e["token"] == "local-cli"]
        assert ("POST", "/v1/tokens", 201) in cli  # `token create` went through the service
        assert ("DELETE", "/v1/tokens/made-up", 200) in cli

    listed = ok(home, "token", "list")
    revoked = {line.split()[0] for line in listed.splitlines()
               if len(line.split()) == 4 and line.split()[0] in ("made-up", "revoked-down")}
    assert revoked == {"made-up", "revoked-down"}  # name, role, created, revoked
    assert set(hashes(home)) == {"made-down", "revoked-down", "made-up", "writer-up"}
    raw = stored_bytes(home)
    assert len(raw) > 10_000
    for token in made:
        assert token.encode() not in raw
        assert token[3:].encode() not in raw
