"""`consentgen reconcile`, `consent revoke` and `release withdraw` through the console script.

The fast tests use releases made of real catalog rows and files (no training); the slow
one builds with tiny models, withdraws by subject and by image, and rebuilds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from consent.state import OPERATOR_WITHDRAWAL_SOURCE
from pipelines.catalog import Ban, ModelRecord, ReleaseImage, Withdrawal
from pipelines.defs.runner import run_build
from pipelines.steps.bans import file_pixel_hash
from pipelines.steps.release import WITHDRAWN, releases_root
from tests.pipelines.cli.test_release_cli import run
from tests.pipelines.conftest import Deployment
from tests.pipelines.steps.published import PURPOSE, Published, first_build, publish_rows, release_pixels


@pytest.fixture
def pub(home: Path) -> Published:
    return publish_rows(home)


def test_reconcile_json_parses_and_a_missing_folder_exits_zero(pub: Published) -> None:
    quiet = run(pub.home, "reconcile", "--json", "--profile", "test")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["count"] == 0
    shutil.rmtree(pub.folder("v0002"))
    pub.ledger.revoke("D", PURPOSE)
    done = run(pub.home, "reconcile", "--json", "--profile", "test")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 8 and report["missing_folders"] == ["v0002"]
    assert report["stale_shards"] == [1] and report["rebuild"] is None
    assert all(not (pub.folder("v0001") / i.file_name).exists() for i in pub.of_model("m1", "v0001"))
    line = run(pub.home, "reconcile", "--profile", "test")
    assert line.returncode == 0 and line.stdout.count("\n") == 1
    assert "nothing to withdraw" in line.stdout and "shards to rebuild: 1" in line.stdout


def test_consent_revoke_withdraws_at_once_and_says_what_waits(pub: Published) -> None:
    out = run(pub.home, "consent", "revoke", "B", "--purpose", PURPOSE)
    assert out.returncode == 0, out.stderr
    assert "recorded #7 revoke B" in out.stdout
    assert "withdrew 8 image(s) from v0001 (4), v0002 (4)" in out.stdout
    assert "the rebuild of shard(s) 0 waits for `consentgen reconcile --rebuild`" in out.stdout
    assert len(pub.catalog.select(Withdrawal)) == 8
    later = run(pub.home, "consent", "revoke", "E", "--purpose", PURPOSE, "--at", "2099-01-01T00:00:00Z")
    assert later.returncode == 0 and "nothing to withdraw" in later.stdout
    assert "takes effect at 2099-01-01T00:00:00+00:00" in later.stdout


def test_release_withdraw_image_and_subject(pub: Published) -> None:
    image = pub.of_model("m1", "v0002")[0]
    out = run(pub.home, "release", "withdraw", "--image", image.image_id, "--reason", "look-alike")
    assert out.returncode == 0, out.stderr
    assert "2 cop(ies) from v0001 (1), v0002 (1)" in out.stdout
    assert all(not (pub.folder(i.version) / i.file_name).exists() for i in pub.images
               if i.candidate_id == image.candidate_id)
    assert ("pixels", file_pixel_hash(pub.home / f"candidates/{image.candidate_id}.png")) in {
        (b.kind, b.value) for b in pub.catalog.select(Ban)}

    by_operator = run(pub.home, "release", "withdraw", "--subject", "A", "--reason", "by phone",
                      "--actor", "dpo-2")
    assert by_operator.returncode == 0, by_operator.stderr
    assert "by dpo-2 on the subject's behalf (dpv:ConsentRevoked)" in by_operator.stdout
    assert "withdrew 8 image(s)" in by_operator.stdout
    last = pub.ledger.events()[-1]
    assert (last.subject_id, last.actor, last.source) == ("A", "dpo-2", OPERATOR_WITHDRAWAL_SOURCE)
    assert {r.note for r in pub.catalog.select(Withdrawal) if r.subject_id == "A"} == {"by phone"}
    exported = pub.home / "records.jsonl"
    assert run(pub.home, "consent", "export", "-f", "iso27560", "-o", str(exported)).returncode == 0
    status = {json.loads(x)["pii_principal_id"]: json.loads(x)["consent_status"]
              for x in exported.read_text().splitlines()}
    assert status["A"] == "dpv:ConsentRevoked" and status["B"] == "dpv:ConsentGiven"

    both = run(pub.home, "release", "withdraw", "--subject", "A", "--image", image.image_id)
    assert both.returncode == 1 and "exactly one of --subject" in both.stderr


@pytest.mark.slow
def test_withdrawn_by_operator_or_image_is_not_undone_by_rebuilds(deployment: Deployment) -> None:
    dep = deployment
    first_build(dep)
    root = releases_root(dep.home)
    images = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")
    victim_model = images[0].model_version
    victim = dep.catalog.select(ModelRecord, "WHERE model_version = ?", [victim_model])[0].subject_id
    withdrawn_pixels = {file_pixel_hash(root / "v0001" / i.file_name) for i in images
                        if i.model_version == victim_model}

    out = run(dep.home, "release", "withdraw", "--subject", victim, "--reason", "operator test")
    assert out.returncode == 0, out.stderr
    assert all(not (root / "v0001" / i.file_name).exists() for i in images if i.model_version == victim_model)

    rebuilt = run(dep.home, "reconcile", "--rebuild", "--json", "--profile", "test")
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout.strip().splitlines()[-1])
    assert report["count"] == 0 and report["rebuild"]["version"] == "v0002"
    assert report["rebuild"]["shards"] == [images[0].shard] and report["rebuild"]["retrained"] == 1
    v2 = pq.read_table(root / "v0002" / "manifest.parquet").to_pandas()
    assert victim_model not in set(v2["model_version"])
    assert not withdrawn_pixels & release_pixels(dep.home, "v0002")  # not undone
    v2_models = set(v2["model_version"])
    behind_v2 = {r.subject_id for r in dep.catalog.select(ModelRecord) if r.model_version in v2_models}
    assert victim not in behind_v2

    # one image of the shard that was not retrained: the same candidate ships in both
    kept = next(i for i in dep.catalog.select(ReleaseImage, "WHERE version = 'v0002' ORDER BY image_id")
                if i.shard != images[0].shard)
    copies = dep.catalog.select(ReleaseImage, "WHERE candidate_id = ?", [kept.candidate_id])
    assert sorted(c.version for c in copies) == ["v0001", "v0002"]
    pixels = file_pixel_hash(root / "v0002" / kept.file_name)
    out = run(dep.home, "release", "withdraw", "--image", kept.image_id, "--reason", "look-alike")
    assert out.returncode == 0, out.stderr
    assert all(not (root / c.version / c.file_name).exists() for c in copies)
    assert all(c.image_id in (root / c.version / WITHDRAWN).read_text().split() for c in copies)

    third = run_build(dep.home, dep.config, instance=dep.instance)  # a full rebuild
    assert third.success and third.version == "v0003", third.failure
    v3 = dep.catalog.select(ReleaseImage, "WHERE version = 'v0003'")
    assert kept.candidate_id not in {i.candidate_id for i in v3}
    assert pixels not in release_pixels(dep.home, "v0003") and not withdrawn_pixels & release_pixels(dep.home, "v0003")
