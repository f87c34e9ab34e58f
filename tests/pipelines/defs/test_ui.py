"""`consentgen ui` serves the Dagster web UI on these definitions, and stops on SIGTERM
like any service: itself, `dagster dev` and everything that started (code servers too)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("consentgen"))


def live_in_session(sid: int) -> list[str]:
    """The processes of session `sid` still running (zombies excluded), from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(text[:text.rindex(")") + 1])
    return out


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_asset_graph_and_stops_on_sigterm(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "CONSENTGEN_HOME": str(home), "CONSENTGEN_PROFILE": "test"}
    subprocess.run([CLI, "init"], env=env, capture_output=True, check=True, timeout=120)
    proc = subprocess.Popen([CLI, "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, "consentgen ui exited"
            assert time.monotonic() < deadline, "the web UI did not come up"
            time.sleep(1)
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        request = urllib.request.Request(f"{base}/graphql", data=query,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            nodes = json.load(resp)["data"]["assetNodes"]
        assert {n["assetKey"]["path"][0] for n in nodes} == {
            "sources", "consent_snapshot", "eligible_records", "shard_models", "candidates",
            "audit", "release"}
        assert (home / ".dagster" / "dagster.yaml").exists()
        assert len(live_in_session(proc.pid)) >= 3  # consentgen, dagster dev, its services

        os.kill(proc.pid, signal.SIGTERM)  # what a service manager sends: to the one process
        assert proc.wait(timeout=90) == 0
        deadline = time.monotonic() + 30  # its children go after it (bounded grace)
        while (live_in_session(proc.pid) or port_open(port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert live_in_session(proc.pid) == [] and not port_open(port)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left of the session, if it failed
        except ProcessLookupError:
            pass
        for leftover in live_in_session(proc.pid):
            os.kill(int(leftover.split()[0]), signal.SIGKILL)
