"""JWTs from the hospital's identity provider, verified against a local JWKS file.

The keys are read from a file the operator places (`[service] jwks_file`), never fetched
over the network: the service must not trust whatever a DNS answer or a proxy hands it,
and it must start and verify with no route out. The file is re-read when it changes
(one `stat` per JWT), so a key rotation needs no restart; a broken rewrite keeps the keys
loaded before it, with a warning, instead of locking everyone out.

Only asymmetric algorithms are accepted, and only those the selected key's type allows:
`none` and HS* would let a caller sign with a "secret" that is in fact the public key
(algorithm confusion). `kid` selects the key; `iss`, `aud`, `exp` and `sub` are required;
the role comes from the configured claim and must be one `token create` could issue, so
an identity provider can never mint an `owner`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from consentgen.errors import ConfigError
from pipelines.service.roles import ISSUABLE, Role
from pipelines.service.runtime import Principal
from pipelines.service.settings import ServiceSettings

log = logging.getLogger("consentgen.service.jwt")

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
OKP_ALGORITHMS = {"Ed25519": "EdDSA", "Ed448": "EdDSA"}
ASYMMETRIC = RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | {"EdDSA"}
"""Every algorithm a token may name; `none` and HS* are never among them."""
MAX_TOKEN_CHARS = 16 * 1024
MAX_JWKS_BYTES = 1024 * 1024
LEEWAY_S = 30
"""Clock skew tolerated on exp / nbf / iat, as between two NTP-synchronised hosts."""
MAX_SUB_CHARS = 200
_WHAT = "service.jwks_file"  # no [brackets]: the CLI prints messages as rich markup


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    key: Any  # a cryptography public key
    algorithms: frozenset[str]


def key_algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    """The asymmetric algorithms a JWK may verify (empty: the key is not usable here)."""
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "RSA":
        allowed = RSA_ALGORITHMS
    elif kty == "EC" and crv in EC_ALGORITHMS:
        allowed = frozenset({EC_ALGORITHMS[crv]})
    elif kty == "OKP" and crv in OKP_ALGORITHMS:
        allowed = frozenset({"EdDSA"})
    else:  # oct (a shared secret) or a type we do not know
        return frozenset()
    if alg is not None:
        return allowed & {alg} if isinstance(alg, str) else frozenset()
    return allowed


def load_jwks(path: Path) -> dict[str, VerifyingKey]:
    """The file's usable signing keys by kid; one clear line when there are none."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{_WHAT} {path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise ConfigError(f"{_WHAT} {path}: larger than {MAX_JWKS_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{_WHAT} {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ConfigError(f"{_WHAT} {path}: not a JWKS (an object with \"keys\")")
    try:
        found = jwt.PyJWKSet.from_dict(data)
    except jwt.PyJWTError as exc:
        raise ConfigError(f"{_WHAT} {path}: {exc}") from None
    keys: dict[str, VerifyingKey] = {}
    skipped: list[str] = []
    for jwk in found.keys:
        data_of: dict[str, Any] = getattr(jwk, "_jwk_data", {})
        kid = jwk.key_id
        algorithms = key_algorithms(data_of)
        if not isinstance(kid, str) or not kid:
            skipped.append("a key without kid (kid selects the key)")
        elif data_of.get("use", "sig") != "sig" or not algorithms:
            skipped.append(f"{kid}: not an asymmetric signing key")
        elif kid in keys:
            raise ConfigError(f"{_WHAT} {path}: kid {kid!r} appears twice")
        else:
            keys[kid] = VerifyingKey(kid, jwk.key, algorithms)
    if not keys:
        raise ConfigError(f"{_WHAT} {path}: no asymmetric signing key with a kid (RS*, PS*, "
                          f"ES*, EdDSA){'; ignored: ' + '; '.join(skipped) if skipped else ''}")
    for note in skipped:
        log.warning("%s %s: ignored %s", _WHAT, path, note)
    return keys


class JwtVerifier:
    """Bearer JWTs of one issuer and audience, against the keys of a local JWKS file."""

    def __init__(self, jwks_file: Path, *, issuer: str, audience: str, role_claim: str,
                 leeway_s: int = LEEWAY_S) -> None:
        self.path = Path(jwks_file)
        self.issuer = issuer
        self.audience = audience
        self.role_claim = role_claim
        self.leeway_s = leeway_s
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._keys = load_jwks(self.path)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> JwtVerifier:
        if settings.jwks_file is None:
            raise ConfigError(f"{_WHAT} is not set")
        for name in ("jwt_issuer", "jwt_audience", "jwt_role_claim"):
            if not getattr(settings, name).strip():
                raise ConfigError(f"service.{name} must be set when jwks_file is (JWTs are "
                                  "accepted only from a named issuer, for a named audience)")
        path = Path(settings.jwks_file).expanduser()
        return cls(path if path.is_absolute() else path.resolve(), issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, role_claim=settings.jwt_role_claim)

    # --- keys ------------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def keys(self) -> dict[str, VerifyingKey]:
        """The current keys: the file is re-read when its mtime (or size, inode) changed."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self._keys
        with self._lock:
            if stamp != self._stamp:
                if stamp is None:
                    log.warning("jwks_file %s is gone; keeping the %d key(s) read before",
                                self.path, len(self._keys))
                else:
                    try:
                        self._keys = load_jwks(self.path)
                        log.info("jwks_file %s re-read: kids %s", self.path,
                                 ", ".join(sorted(self._keys)))
                    except ConfigError as exc:
                        log.warning("%s; keeping the %d key(s) read before", exc, len(self._keys))
                self._stamp = stamp
        return self._keys

    # --- tokens ----------------------------------------------------------------------------

    def principal(self, token: str) -> Principal | None:
        """Who the token names, or None when it is not a JWT this service accepts."""
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal | None, str]:
        """(the principal, "") or (None, why it was refused: one line for the 401)."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            return None, "not a JWT"
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            return None, "JWT header unreadable"
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            return None, f"JWT algorithm {str(alg)[:20]!r} is not accepted (asymmetric only)"
        key = self.keys().get(kid) if isinstance(kid, str) else None
        if key is None:
            return None, "JWT kid names no key of the configured JWKS"
        if alg not in key.algorithms:
            return None, f"JWT algorithm {alg} does not fit key {kid}"
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            return None, "JWT expired"
        except jwt.PyJWTError as exc:
            return None, f"JWT refused: {' '.join(str(exc).split())[:200]}"
        except (ValueError, TypeError, KeyError):
            return None, "JWT refused: malformed"
        return self._principal_of(claims)

    def _principal_of(self, claims: dict[str, Any]) -> tuple[Principal | None, str]:
        sub = claims.get("sub")
        if (not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_SUB_CHARS
                or not sub.isprintable()):
            return None, "JWT sub must be a printable string of at most 200 characters"
        value = claims.get(self.role_claim)
        try:
            role = Role(value) if isinstance(value, str) else None
        except ValueError:
            role = None
        if role not in ISSUABLE:
            return None, (f"JWT claim {self.role_claim} must be one of "
                          f"{', '.join(r.value for r in ISSUABLE)}")
        return Principal(f"jwt:{sub}", role, "jwt"), ""
