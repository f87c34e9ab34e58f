"""JWTs from an identity provider on a real server: a local JWKS, asymmetric keys only.

The keys are made here with `cryptography` (RSA and EC), the JWKS written into the home
by the test as an operator would place it, and the tokens signed with pyjwt, as an
identity provider would; the forged ones (alg none, HS256 keyed with the public key's
PEM) are put together by hand, since pyjwt itself refuses to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.pipelines.cli.console import ok, run
from tests.pipelines.service.server import Service, free_port, serving

PURPOSE = "synthetic-training"
ISSUER = "https://idp.hospital.test/realms/research"
AUDIENCE = "consentgen-test"
CLAIM = "cg_role"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwk_of(key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    kind = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else (
        jwt.algorithms.ECAlgorithm)
    return {**kind.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


def write_jwks(path: Path, keys: dict[str, Any]) -> None:
    """Written aside and renamed, as a rotation job would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [jwk_of(k, kid) for kid, k in keys.items()]}))
    os.replace(tmp, path)


def claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600,
            CLAIM: "auditor"}
    for name, value in override.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def signed(key: Any, kid: str, alg: str = "RS256", **override: Any) -> str:
    return jwt.encode(claims(**override), key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    if secret is None:
        return head + "."
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def configure(home: Path, jwks: Path) -> None:
    toml = home / "consentgen.toml"
    text = toml.read_text()
    assert "\n[service]\n" in text
    toml.write_text(text.replace("\n[service]\n", f"""\n[service]
jwks_file = "{jwks}"
jwt_issuer = "{ISSUER}"
jwt_audience = "{AUDIENCE}"
jwt_role_claim = "{CLAIM}"
""", 1))


class Idp:
    def __init__(self, service: Service, jwks: Path, rsa_private: Any, ec_private: Any) -> None:
        self.service = service
        self.jwks = jwks
        self.rsa = rsa_private
        self.ec = ec_private
        self.other = rsa_key()  # never in the JWKS


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    home = tmp_path_factory.mktemp("jwt") / "home"
    ok(home, "init")
    jwks = home / "idp-jwks.json"
    keys = {"rsa-1": rsa_key(), "ec-1": ec_key()}
    write_jwks(jwks, keys)
    configure(home, jwks)
    with serving(home) as service:
        yield Idp(service, jwks, keys["rsa-1"], keys["ec-1"])


def call(service: Service, token: str, method: str = "GET", path: str = "/v1/consent/eligible",
         **kwargs: Any) -> int:
    with service.client(token) as http:
        if method == "GET" and "params" not in kwargs:
            kwargs["params"] = {"purpose": PURPOSE}
        return http.request(method, path, **kwargs).status_code


def test_valid_jwts_are_allowed_per_their_role(idp: Idp) -> None:
    auditor = signed(idp.rsa, "rsa-1", sub="alice", cg_role="auditor")
    writer = signed(idp.ec, "ec-1", "ES256", sub="cmp-gateway", cg_role="consent-writer")
    event = {"subject_id": "jwt-s1", "purpose": PURPOSE, "action": "grant",
             "event_id": "jwt-e1", "effective_at": "2026-01-05T09:00:00Z"}
    assert call(idp.service, auditor) == 200
    assert call(idp.service, auditor, "POST", "/v1/consent/events", json=event) == 403
    assert call(idp.service, writer, "POST", "/v1/consent/events", json=event) == 201
    assert call(idp.service, writer) == 403
    ps256 = signed(idp.rsa, "rsa-1", "PS256", sub="bob", cg_role="auditor")
    assert call(idp.service, ps256) == 200  # an RSA key without alg verifies RS* and PS*
    with idp.service.as_role("auditor") as http:
        events = http.get("/v1/consent/events", params={"subject_id": "jwt-s1"}).json()["events"]
    assert [e["actor"] for e in events] == ["jwt:cmp-gateway"]


def test_the_access_log_records_the_jwts_sub_and_role(idp: Idp) -> None:
    token = signed(idp.rsa, "rsa-1", sub="carol.audit", cg_role="auditor")
    assert call(idp.service, token, path="/v1/consent/head", params={}) == 200
    with idp.service.owner() as http:
        entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
    mine = [(e["token"], e["role"], e["path"], e["status"]) for e in entries
            if "carol" in e["token"]]
    assert mine == [("jwt:carol.audit", "auditor", "/v1/consent/head", 200)]


def refused(idp: Idp) -> dict[str, str]:
    now = int(time.time())
    public_pem = idp.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "expired": signed(idp.rsa, "rsa-1", exp=now - 3600, iat=now - 7200),
        "wrong aud": signed(idp.rsa, "rsa-1", aud="another-service"),
        "wrong iss": signed(idp.rsa, "rsa-1", iss="https://evil.test/"),
        "no exp": signed(idp.rsa, "rsa-1", exp=None),
        "no aud": signed(idp.rsa, "rsa-1", aud=None),
        "no iss": signed(idp.rsa, "rsa-1", iss=None),
        "no sub": signed(idp.rsa, "rsa-1", sub=None),
        "not yet valid": signed(idp.rsa, "rsa-1", nbf=now + 3600),
        "unknown kid": signed(idp.rsa, "rsa-9"),
        "signed by a key not in the JWKS": signed(idp.other, "rsa-1"),
        "EC alg on the RSA key": signed(idp.ec, "rsa-1", "ES256"),
        "alg none": forged({"alg": "none", "kid": "rsa-1", "typ": "JWT"}, claims(), None),
        "alg none, no kid": forged({"alg": "none"}, claims(), None),
        "HS256 keyed with the public key": forged({"alg": "HS256", "kid": "rsa-1"}, claims(),
                                                  public_pem),
        "role owner": signed(idp.rsa, "rsa-1", cg_role="owner"),
        "unknown role": signed(idp.rsa, "rsa-1", cg_role="admin"),
        "no role": signed(idp.rsa, "rsa-1", cg_role=None),
        "tampered payload": _tampered(signed(idp.rsa, "rsa-1", cg_role="reader")),
        "garbage": "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    }


def _tampered(token: str) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{b64(json.dumps(claims(cg_role='consent-officer')).encode())}.{sig}"


WHY = {"expired": "expired", "wrong aud": "Audience", "wrong iss": "issuer",
       "no exp": '"exp"', "no aud": '"aud"', "no iss": '"iss"', "no sub": '"sub"',
       "not yet valid": "nbf", "unknown kid": "kid", "signed by a key not in the JWKS":
       "Signature", "EC alg on the RSA key": "does not fit", "alg none": "'none'",
       "alg none, no kid": "'none'", "HS256 keyed with the public key": "'HS256'",
       "role owner": "cg_role", "unknown role": "cg_role", "no role": "cg_role",
       "tampered payload": "Signature", "garbage": "kid"}


def test_bad_jwts_are_401(idp: Idp) -> None:
    answers, reasons = {}, {}
    for name, token in refused(idp).items():
        with idp.service.client(token) as http:
            answer = http.get("/v1/consent/head")
        answers[name] = answer.status_code
        error = answer.json()["error"]
        assert error["code"] == "unauthenticated", name
        assert "\n" not in error["message"]
        reasons[name] = WHY[name] in error["message"]
    assert answers == dict.fromkeys(answers, 401)
    assert reasons == dict.fromkeys(reasons, True)  # each refused for its own reason
    good = signed(idp.rsa, "rsa-1")
    assert call(idp.service, good, path="/v1/consent/head", params={}) == 200


def test_a_rotated_jwks_is_read_without_a_restart(idp: Idp) -> None:
    old = signed(idp.rsa, "rsa-1", sub="before-rotation")
    assert call(idp.service, old) == 200
    new_key = ec_key()
    write_jwks(idp.jwks, {"ec-2": new_key})
    new = signed(new_key, "ec-2", "ES256", sub="after-rotation")
    assert call(idp.service, new) == 200
    assert call(idp.service, old) == 401  # rsa-1 was rotated out
    idp.jwks.write_text("{ not json")  # a broken rewrite keeps the keys read before
    assert call(idp.service, new) == 200
    write_jwks(idp.jwks, {"rsa-1": idp.rsa, "ec-1": idp.ec})
    assert call(idp.service, signed(idp.rsa, "rsa-1")) == 200
    assert idp.service.proc.poll() is None


@pytest.mark.parametrize(("jwks", "settings", "expected"), [
    (None, {}, "cannot read it"),
    ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}]}', {}, "no asymmetric signing key"),
    ("[1, 2]", {}, "not a JWKS"),
    ("valid", {"jwt_issuer": ""}, "jwt_issuer must be set"),
])
def test_a_bad_jwt_configuration_stops_serve_in_one_line(
        tmp_path: Path, jwks: str | None, settings: dict[str, str], expected: str) -> None:
    home = tmp_path / "home"
    ok(home, "init")
    path = home / "jwks.json"
    if jwks == "valid":
        write_jwks(path, {"ec-1": ec_key()})
    elif jwks is not None:
        path.write_text(jwks)
    configure(home, path)
    toml = home / "consentgen.toml"
    for name, value in settings.items():
        text = toml.read_text()
        start = text.index(f"\n{name} = ")
        end = text.index("\n", start + 1)
        toml.write_text(text[:start] + f'\n{name} = "{value}"' + text[end:])
    done = run(home, "serve", "--port", str(free_port()), timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (home / "service.json").exists()
