"""`consentgen ui` serves the Dagster web UI on these definitions."""

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_asset_graph(home: Path) -> None:
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
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: dagster dev stops its children
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left of the session
        except ProcessLookupError:
            pass
