"""`consentgen serve --tls-cert F --tls-key F` on a real server with a self-signed
certificate made here with `cryptography` (CN and SAN 127.0.0.1), and the home's own
command line talking to it through the `ca_file` of service.json."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.pipelines.cli.console import ok, run
from tests.pipelines.service.server import Service, free_port, serving


def self_signed(folder: Path, name: str = "service") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    root = tmp_path_factory.mktemp("tls")
    home = root / "home"
    ok(home, "init")
    cert, key = self_signed(root)
    with serving(home, "--tls-cert", str(cert), "--tls-key", str(key)) as service:
        yield service, cert


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def test_https_works_with_the_certificate_trusted(tls: tuple[Service, Path]) -> None:
    service, cert = tls
    assert service.url.startswith("https://127.0.0.1:")
    with httpx.Client(base_url=service.url, verify=trusting(cert),
                      headers={"Authorization": f"Bearer {service.owner_token}"}) as http:
        assert http.get("/v1/health").status_code == 200
        made = http.post("/v1/tokens", json={"name": "tls-auditor", "role": "auditor"})
        assert made.status_code == 201
    with httpx.Client(base_url=service.url, verify=trusting(cert),
                      headers={"Authorization": f"Bearer {made.json()['token']}"}) as http:
        assert http.get("/v1/consent/head").json()["seq"] == 0


def test_plain_http_and_untrusted_https_fail(tls: tuple[Service, Path]) -> None:
    service, _ = tls
    plain = service.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/v1/health", timeout=5.0)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{service.url}/v1/health", timeout=5.0)  # the system's CAs: not trusted
    with httpx.Client(verify=trusting(tls[1])) as http:
        assert http.get(f"{service.url}/v1/health").status_code == 200  # still serving


def test_the_command_line_talks_to_the_tls_service(tls: tuple[Service, Path]) -> None:
    service, cert = tls
    info = json.loads((service.home / "service.json").read_text())
    assert info["url"] == service.url and info["ca_file"] == str(cert.resolve())
    token = ok(service.home, "token", "create", "--role", "reader", "--name", "tls-cli").strip()
    assert token.startswith("cg_")
    listed = ok(service.home, "token", "list")
    assert "tls-cli" in listed and "reader" in listed
    with httpx.Client(base_url=service.url, verify=trusting(cert),
                      headers={"Authorization": f"Bearer {service.owner_token}"}) as http:
        entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
    through = [(e["token"], e["method"], e["path"], e["status"]) for e in entries]
    assert ("local-cli", "POST", "/v1/tokens", 201) in through  # made by the service
    assert ("local-cli", "GET", "/v1/tokens", 200) in through


@pytest.mark.parametrize("flags", [("--tls-cert",), ("--tls-key",)])
def test_one_tls_flag_alone_is_one_line_error(tmp_path: Path, flags: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    ok(home, "init")
    cert, key = self_signed(tmp_path)
    args = [a for flag in flags for a in (flag, str(cert if flag == "--tls-cert" else key))]
    done = run(home, "serve", "--port", str(free_port()), *args, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--tls-cert" in lines[0] and "--tls-key" in lines[0], done.stderr
    assert not (home / "service.json").exists()


def test_a_key_of_another_certificate_is_one_line_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(home, "init")
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    done = run(home, "serve", "--port", str(free_port()), "--tls-cert", str(cert),
               "--tls-key", str(other_key), timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be used together" in lines[0], done.stderr
