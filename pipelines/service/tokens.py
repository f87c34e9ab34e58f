"""Bearer tokens: made once, shown once, stored only as their SHA-256.

A token is 32 random bytes (`secrets.token_urlsafe`) behind a `cg_` prefix, so a leaked
one is easy to grep for; being random, a plain SHA-256 is all its storage needs (no slow
password hash: there is nothing to guess). The service keeps the table in memory and
consults the file only when a token is made or revoked through it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from consentgen.errors import TokenError
from pipelines.service.roles import ISSUABLE, Role

PREFIX = "cg_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def check_role(role: str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        parsed = None
    if parsed not in ISSUABLE:
        owner = " (owner is the home's own command line; it is never issued)"
        raise TokenError(f"role {role!r} is not one of {', '.join(ISSUABLE)}"
                         + (owner if role == Role.OWNER.value else ""))
    return parsed


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise TokenError(f"token name {name!r}: use letters, digits and . _ - (up to 64, "
                         "starting with a letter or digit)")
    return name


def create(con: duckdb.DuckDBPyConnection, name: str, role: str) -> tuple[str, TokenRecord]:
    """A new token named `name`; returns the token (to show once) and its record."""
    parsed = check_role(role)
    check_name(name)
    if con.execute("SELECT 1 FROM tokens WHERE name = ?", [name]).fetchall():
        raise TokenError(f"a token named {name!r} exists already; pick another name (a "
                         "revoked token keeps its name: the access log refers to it)")
    token = new_token()
    now = datetime.now(UTC)
    con.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, NULL)",
                [name, parsed.value, digest(token), now.replace(tzinfo=None)])
    return token, TokenRecord(name, parsed, now)


def revoke(con: duckdb.DuckDBPyConnection, name: str) -> TokenRecord:
    rows = con.execute("SELECT role, created_at, revoked_at FROM tokens WHERE name = ?",
                       [name]).fetchall()
    if not rows:
        raise TokenError(f"no token named {name!r}")
    role, created, revoked = rows[0]
    if revoked is None:
        revoked = datetime.now(UTC).replace(tzinfo=None)
        con.execute("UPDATE tokens SET revoked_at = ? WHERE name = ?", [revoked, name])
    return TokenRecord(name, Role(role), created.replace(tzinfo=UTC), revoked.replace(tzinfo=UTC))


def listing(con: duckdb.DuckDBPyConnection) -> list[TokenRecord]:
    return [TokenRecord(n, Role(r), c.replace(tzinfo=UTC), v.replace(tzinfo=UTC) if v else None)
            for n, r, c, v in con.execute(
                "SELECT name, role, created_at, revoked_at FROM tokens ORDER BY name").fetchall()]


def by_digest(con: duckdb.DuckDBPyConnection) -> dict[str, TokenRecord]:
    """Every active token by its digest: what the service loads at start."""
    rows = con.execute("SELECT token_hash, name, role, created_at FROM tokens "
                       "WHERE revoked_at IS NULL").fetchall()
    return {h: TokenRecord(n, Role(r), c.replace(tzinfo=UTC)) for h, n, r, c in rows}
