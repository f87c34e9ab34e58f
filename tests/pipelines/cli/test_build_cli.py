"""`consentgen build` end to end through the console script, with tiny real models: it
publishes, an unchanged rebuild publishes nothing, `--force` builds anyway, and a
blocking check that fails is one line naming the check, its finding, the run and the
UI page, with no traceback on the terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from pipelines.catalog import Candidate, Release, ReleaseImage
from tests.pipelines.cli.test_build_errors import TINY, one_line_error, run
from tests.pipelines.conftest import PURPOSE, Deployment


@pytest.mark.slow
def test_publish_then_nothing_changed_then_a_blocked_forced_build(deployment: Deployment) -> None:
    dep = deployment
    (dep.home / "consentgen.toml").write_text(TINY)
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)

    first = run(dep.home, "build", timeout=900)
    assert first.returncode == 0, first.stderr
    assert "published v0001" in first.stdout and "done     release" in first.stdout
    assert "passed   check no_near_duplicates" in first.stdout
    assert "Traceback" not in first.stdout + first.stderr
    log = Path(re.search(r"log:\s+(\S+\.log)", first.stdout).group(1))
    assert log.is_file() and log.parent == dep.home / ".dagster" / "logs"
    digest = dep.catalog.select(Release)[0].inputs_digest
    assert digest and len(digest) == 64

    again = run(dep.home, "build", timeout=900)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.strip() == "nothing changed since v0001; --force to publish anyway"

    # a published candidate gains a text chunk, its pixels unchanged: the forced build
    # reuses it (same models, same candidates), the audit passes, the metadata check blocks
    image = dep.catalog.select(ReleaseImage, "ORDER BY image_id")[0]
    candidate = dep.catalog.select(Candidate, "WHERE candidate_id = ?", [image.candidate_id])[0]
    path = dep.home / candidate.image_path
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Dr. Somebody, St. Elsewhere")
    with Image.open(path) as im:
        im.load()
        im.save(path, pnginfo=info)

    forced = run(dep.home, "build", "--force", timeout=900)
    line = one_line_error(forced, "release blocked by check no_identifying_metadata",
                          f"candidate {candidate.candidate_id}", "`consentgen ui`")
    assert re.search(r": 1 of \d+ images carry metadata", line), line
    run_id = re.search(r"/runs/([0-9a-f-]{36})", line).group(1)
    assert f"run {run_id}" in line and f"http://127.0.0.1:3000/runs/{run_id}" in line
    assert line.endswith(f"full log: {dep.home / '.dagster' / 'logs' / run_id}.log")
    assert "BLOCKED  check no_identifying_metadata" in forced.stdout
    assert [r.version for r in dep.catalog.select(Release)] == ["v0001"]
