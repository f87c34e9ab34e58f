"""`consentgen consent erasure SUBJECT [--json]` through the console script: the record a
data protection officer answers an erasure request with, before and after each step."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.catalog import ModelRecord, ReleaseImage
from pipelines.defs.runner import run_build
from pipelines.steps.erasure import erase_ended
from pipelines.steps.reconcile import reconcile
from tests.pipelines.conftest import PURPOSE, Deployment
from tests.pipelines.steps.test_erasure import ingest_copy, trainees

from tests.pipelines.cli import console


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    return console.run(home, *args, env={"CONSENTGEN_PROFILE": "test"})


def record_of(home: Path, subject: str) -> tuple[str, dict]:
    text, as_json = run(home, "consent", "erasure", subject), run(home, "consent", "erasure", subject, "--json")
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    return text.stdout, json.loads(as_json.stdout)


@pytest.mark.slow
def test_the_erasure_record_before_and_after_reconcile_and_erasure(deployment: Deployment) -> None:
    dep = deployment
    never_asked = dep.subjects[0]
    victim, sharer = trainees(dep, 2)
    ingest_copy(dep.home, victim, sharer, "shared/pixels-1")
    for subject in dep.subjects[1:]:
        dep.ledger.grant(subject, PURPOSE)
    built = run_build(dep.home, dep.config, instance=dep.instance)
    assert built.success, built.failure
    models = {r.model_version for r in dep.catalog.select(ModelRecord, "WHERE subject_id = ?", [victim])}
    published = [i for i in dep.catalog.select(ReleaseImage) if i.model_version in models]
    assert published

    text, _ = record_of(dep.home, sharer)
    assert "consent: not ended: consent still holds for purpose synthetic-training" in text
    assert "source kept: consent still holds for purpose synthetic-training" in text
    text, _ = record_of(dep.home, never_asked)
    assert "never asked" in text and "files erased (0)" in text

    dep.ledger.revoke(victim, PURPOSE)
    text, record = record_of(dep.home, victim)
    assert "nothing erased yet: the reconcile has not run since consent ended" in text
    assert record["withdrawn"] == [] and record["erased"] == []
    assert {r["kind"] for r in record["remains"]} == {"source", "checkpoint", "candidate", "published"}

    reconcile(dep.catalog, dep.ledger, dep.config)
    _, record = record_of(dep.home, victim)
    [withdrawn] = record["withdrawn"]
    assert withdrawn["version"] == built.version and withdrawn["images"] == len(published)
    assert withdrawn["for_this_subject"] == len(published) and withdrawn["max_latency_s"] >= 0
    assert "published" not in {r["kind"] for r in record["remains"]}

    erase_ended(dep.catalog, dep.ledger, dep.config)
    text, record = record_of(dep.home, victim)
    assert record["subject_id"] == victim and record["consent"]["ended"] is True
    assert [e["action"] for e in record["events"]] == ["grant", "revoke"]
    kinds = {e["kind"] for e in record["erased"]}
    assert kinds >= {"source", "checkpoint", "candidate"}
    assert all(e["erased_at"] and e["path"] for e in record["erased"])
    [kept] = record["remains"]
    assert kept["kind"] == "source" and kept["why"].startswith("source PNG kept: shared with 1 record(s)")
    assert f"images withdrawn ({len(published)}):" in text and f"  {built.version}: {len(published)} image(s)" in text
    assert f"files erased ({len(record['erased'])}):" in text and "remains (1):" in text
    assert "source PNG kept: shared with 1 record(s) of other subjects who stay" in text

    nobody = run(dep.home, "consent", "erasure", "nobody-at-all")
    assert nobody.returncode == 1 and nobody.stdout == "" and "Traceback" not in nobody.stderr
    assert nobody.stderr.strip().count("\n") == 0 and "no subject 'nobody-at-all'" in nobody.stderr
