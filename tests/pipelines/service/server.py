"""A real `consentgen serve` on a loopback port, as an operator starts it.

`serving(home)` starts the console script in its own process (real uvicorn, real files),
waits until it answers, and stops it with SIGTERM afterwards (SIGKILL if it hangs).
`Service` hands out httpx clients and tokens of any role (made through the API with the
owner token the service wrote into the home).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.pipelines.cli.console import CLI

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    home: Path
    url: str
    proc: subprocess.Popen
    owner_token: str
    log_path: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kwargs)  # type: ignore[arg-type]

    def owner(self) -> httpx.Client:
        return self.client(self.owner_token)

    def token(self, role: str, name: str | None = None) -> str:
        """A token of `role` (one per role and name, made once per service)."""
        name = name or f"test-{role}"
        if name not in self._tokens:
            with self.owner() as http:
                answer = http.post("/v1/tokens", json={"name": name, "role": role})
            assert answer.status_code == 201, answer.text
            self._tokens[name] = answer.json()["token"]
        return self._tokens[name]

    def as_role(self, role: str) -> httpx.Client:
        return self.client(self.token(role))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start(home: Path, *args: str, env: dict[str, str] | None = None,
          port: int | None = None) -> Service:
    """Start the service on `home`; returns once /v1/health answers 200."""
    port = port or free_port()
    log_path = home.parent / f"serve-{port}.log"
    full_env = {**os.environ, "CONSENTGEN_HOME": str(home), "COLUMNS": "300", **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([CLI, "serve", "--port", str(port), *args], stdout=log,
                                stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    info = home / "service.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"consentgen serve exited {proc.returncode}: "
                                 f"{log_path.read_text(errors='replace')}")
        if info.exists():
            try:
                found = json.loads(info.read_text())
                if found["pid"] == proc.pid:
                    scheme = "https" if "--tls-cert" in args else "http"
                    url = f"{scheme}://127.0.0.1:{port}"
                    verify = (ssl.create_default_context(cafile=found["ca_file"])
                              if found.get("ca_file") else True)
                    if httpx.get(f"{url}/v1/health", timeout=2.0, verify=verify).status_code == 200:
                        return Service(home, url, proc, found["token"], log_path)
            except (ValueError, KeyError, httpx.HTTPError):
                pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"consentgen serve did not answer in {START_TIMEOUT_S}s: "
                         f"{log_path.read_text(errors='replace')}")


@contextmanager
def serving(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Service]:
    service = start(home, *args, env=env)
    try:
        yield service
    finally:
        service.stop()
