"""README "How a consent-management platform connects", run as written.

The direct request's JSON body, the webhook's TOML table and the Python webhook example
are taken from the README itself and run against a real server, so the page cannot drift
from what the service accepts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.pipelines.cli.console import ok
from tests.pipelines.service.server import serving

README = Path(__file__).resolve().parents[3] / "README.md"
SECRET = "a-secret-of-more-than-16-characters"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### How a consent-management platform connects")
    return text[start:text.index("\n## ", start)]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", _section(), flags=re.S)


def test_the_readme_shows_a_direct_request_and_a_signed_webhook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(home, "init")
    (toml,) = [b for b in _blocks(r"toml\s*") if "[service.webhooks." in b]
    with open(home / "consentgen.toml", "a", encoding="utf-8") as fh:
        fh.write("\n" + "\n".join(line.strip() for line in toml.splitlines()) + "\n")
    direct = next(b for b in _blocks("bash") if "/v1/consent/events" in b)
    body = json.loads(re.search(r"-d '(.*?)'", direct, flags=re.S).group(1))
    (python,) = _blocks("python")
    with serving(home, env={"CONSENTGEN_ONETRUST_SECRET": SECRET}) as service:
        token = ok(home, "token", "create", "--role", "consent-writer", "--name", "onetrust").strip()
        with service.client(token) as http:
            assert http.post("/v1/consent/events", json=body).status_code == 201
        url = service.url
        run = subprocess.run(
            [sys.executable, "-c", python.replace("http://127.0.0.1:8470", url)],
            env={**os.environ, "TOKEN": token, "CONSENTGEN_ONETRUST_SECRET": SECRET},
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        with service.as_role("auditor") as http:
            events = http.get("/v1/consent/events", params={"subject_id": "s001"}).json()["events"]
    assert [(e["action"], e["source"]) for e in events] == [("grant", ""),
                                                              ("revoke", "webhook:onetrust")]
    assert ok(home, "consent", "status", "s001", "--purpose", "synthetic-training").startswith(
        "not granted")
