"""`consentgen build` and `consentgen release list|show|withdraw` through the console script."""

from __future__ import annotations


import pytest

from pipelines.catalog import ModelRecord, ReleaseImage
from pipelines.steps.release import WITHDRAWN
from tests.pipelines.conftest import PURPOSE, Deployment

from tests.pipelines.cli.console import run


@pytest.mark.slow
def test_build_then_list_show_and_withdraw(deployment: Deployment) -> None:
    dep = deployment
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    built = run(dep.home, "build", "--profile", "test")
    assert built.returncode == 0, built.stderr
    assert "published v0001" in built.stdout and "data_card.html" in built.stdout

    listed = run(dep.home, "release", "list")
    assert listed.returncode == 0 and "v0001" in listed.stdout

    shown = run(dep.home, "release", "show")  # LATEST by default
    assert shown.returncode == 0
    assert str(dep.home / "releases" / "v0001") in shown.stdout and "withdrawn 0" in shown.stdout

    image = dep.catalog.select(ReleaseImage, "ORDER BY image_id")[0]
    subject = dep.catalog.select(ModelRecord, "WHERE model_version = ?", [image.model_version])[0].subject_id
    withdrawn = run(dep.home, "release", "withdraw", "--subject", subject)
    assert withdrawn.returncode == 0 and "v0001" in withdrawn.stdout
    folder = dep.home / "releases" / "v0001"
    assert image.image_id in (folder / WITHDRAWN).read_text().split()
    assert not (folder / image.file_name).exists()
    assert f"withdrawn {len((folder / WITHDRAWN).read_text().split())}" in run(
        dep.home, "release", "show", "v0001").stdout

    nobody = run(dep.home, "release", "withdraw", "--subject", "nobody-at-all")
    assert nobody.returncode == 1 and "Traceback" not in nobody.stderr
    assert "no subject 'nobody-at-all'" in nobody.stderr and nobody.stdout == ""

    missing = run(dep.home, "release", "show", "v0042")
    assert missing.returncode != 0 and "no release v0042" in missing.stderr
