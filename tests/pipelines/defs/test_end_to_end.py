"""One deployment, end to end, through real Dagster runs with tiny real models.

Consent is honoured at training, a revocation withdraws at once and rebuilds only its
shard, a planted near-duplicate blocks the release, and a failed publish leaves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from consentgen.errors import ReleaseError
from pipelines.catalog.lineage import kept_candidates
from pipelines.catalog import ModelRecord, Release, ReleaseImage, ShardModel, Withdrawal
from pipelines.defs.definitions import make_definitions
from pipelines.defs.resources import SNAPSHOT_TAG
from pipelines.steps.release import LATEST, WITHDRAWN, releases_root
from pipelines.defs.runner import instance_for, report_of, run_build, tick_revocation_sensor
from pipelines.steps.release import publish
from tests.pipelines.conftest import PURPOSE, Deployment
from validation.release.metadata import find_identifying_metadata
from validation.release.provenance import ExpectedProvenance, ReleaseProvenance
from validation.release.signer import ensure_dev_signer

UP_TO_AUDIT = dg.AssetSelection.assets("audit").upstream()


def load_image_folder(folder: Path, cache: Path):
    """`datasets.load_dataset("imagefolder")`, offline, as a consumer of a release would."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    return load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(cache))


def trained_subjects(dep: Deployment) -> set[str]:
    return {r.subject_id for r in dep.catalog.select(ModelRecord)}


def consent_most(dep: Deployment) -> tuple[str, str]:
    """Grant all subjects but one never asked and one revoked before the build."""
    never_asked, revoked_early = dep.subjects[0], dep.subjects[1]
    for subject in dep.subjects[1:]:
        dep.ledger.grant(subject, PURPOSE)
    dep.ledger.revoke(revoked_early, PURPOSE)
    return never_asked, revoked_early


@pytest.mark.slow
def test_consent_revocation_and_rebuild(deployment: Deployment) -> None:
    dep = deployment
    never_asked, revoked_early = consent_most(dep)

    first = run_build(dep.home, dep.config, instance=dep.instance)
    assert first.success and first.version == "v0001", first.failure
    assert all(first.checks.values()) and len(first.checks) == 4
    # invariant 1: neither the never-asked nor the revoked subject trained any model
    assert never_asked not in trained_subjects(dep) and revoked_early not in trained_subjects(dep)

    root = releases_root(dep.home)
    v1 = root / "v0001"
    assert (root / LATEST).read_text().strip() == "v0001"
    manifest = pq.read_table(v1 / "manifest.parquet").to_pandas()
    assert not {c for c in manifest.columns if any(w in c for w in ("subject", "record", "source"))}
    assert manifest["image_id"].is_unique and len(manifest) == dep.config.shards * dep.config.images_per_shard
    files = sorted(v1.glob("images/*/*.png"))
    assert sorted(f.relative_to(v1).as_posix() for f in files) == sorted(manifest["file_name"])
    assert {f.parent.name for f in files} <= {"no_tumour", "tumour"}  # ImageFolder layout
    # integer labels ship as their text, named by the build's labels.names
    assert set(zip(manifest["label"], manifest["label_name"], strict=True)) <= {
        ("0", "no_tumour"), ("1", "tumour")}
    # nothing but our own provenance: this release's manifest, signed by the home's signer
    head = dep.catalog.select(Release, "WHERE version = 'v0001'")[0].head_hash
    ours = ExpectedProvenance(
        provenance=ReleaseProvenance(release="v0001", generator=dep.config.generator.kind,
                                     ledger_head=head),
        trust_pem=ensure_dev_signer(dep.home)[0].trust_pem)
    assert all(find_identifying_metadata(f, provenance=ours) == [] for f in files)
    assert {x.kind for x in find_identifying_metadata(files[0])} >= {"c2pa", "png_text"}
    assert Image.open(files[0]).size == (dep.config.generator.image_size,) * 2
    card = (v1 / "data_card.html").read_text()
    assert dep.ledger.events()[-1].hash[:16] in card  # names the consent head it honoured
    assert not any(s in card for s in dep.subjects)
    assert (v1 / "expectations").is_dir() and (v1 / WITHDRAWN).read_text() == ""

    # a subject whose records trained a shard model revokes
    images = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")
    victim_model = images[0].model_version
    victim = dep.catalog.select(ModelRecord, "WHERE model_version = ?", [victim_model])[0].subject_id
    victim_shard = images[0].shard
    models_before = {m.shard: m.model_version for m in dep.catalog.select(ShardModel)}
    # meanwhile the never-asked subject opts in: their shard gains records, yet its model,
    # whose every record is still consented, stays usable until that shard is rebuilt
    dep.ledger.grant(never_asked, PURPOSE)
    revoke = dep.ledger.revoke(victim, PURPOSE)

    tick = tick_revocation_sensor(dep.home, dep.config, cursor=revoke.seq - 2, instance=dep.instance)
    tainted = [i for i in images if i.model_version == victim_model]
    assert tick.shards == [victim_shard] and tick.cursor == revoke.seq
    assert all(not (v1 / i.file_name).exists() for i in tainted)            # gone at once
    untouched = [i for i in images if i.model_version != victim_model]
    assert untouched and all((v1 / i.file_name).exists() for i in untouched)
    assert sorted((v1 / WITHDRAWN).read_text().split()) == sorted(i.image_id for i in tainted)
    withdrawals = dep.catalog.select(Withdrawal)
    assert len(withdrawals) == len(tainted) and all(w.latency_s >= 0 for w in withdrawals)
    assert {w.event_seq for w in withdrawals} == {revoke.seq}
    again = tick_revocation_sensor(dep.home, dep.config, cursor=revoke.seq - 2, instance=dep.instance)
    assert len(dep.catalog.select(Withdrawal)) == len(tainted)  # idempotent
    # the shard is still stale until rebuilt: the same request again, which Dagster
    # de-duplicates by its run key
    assert again.shards == [victim_shard] and again.run_keys == tick.run_keys

    # what remains of v0001 still loads as an image folder, labels from the class folders
    remaining = load_image_folder(v1 / "images", dep.home.parent / "hf-cache")
    assert remaining.num_rows == len(untouched)
    classes = sorted({(v1 / i.file_name).parent.name for i in untouched})
    if len(classes) > 1:  # imagefolder labels by folder only when there are several
        assert remaining.features["label"].names == classes
    else:
        assert "label" not in remaining.features

    second = run_build(dep.home, dep.config, shards=tick.shards, instance=dep.instance)
    assert second.success and second.version == "v0002", second.failure
    assert second.retrained == 1
    models_after = {m.shard: m.model_version for m in dep.catalog.select(
        ShardModel, "WHERE model_version IN (SELECT model_version FROM release_images WHERE version = 'v0002')")}
    assert models_after[victim_shard] != models_before[victim_shard]
    assert all(models_after[s] == v for s, v in models_before.items() if s != victim_shard)
    rebuilt = dep.catalog.select(ModelRecord, "WHERE model_version = ?", [models_after[victim_shard]])
    assert rebuilt and victim not in {r.subject_id for r in rebuilt}
    assert (root / LATEST).read_text().strip() == "v0002"
    v2 = pd.read_csv(root / "v0002" / "manifest.csv")
    assert len(v2) == len(manifest) and victim_model not in set(v2["model_version"])


def _checks_then_release(dep: Deployment, snapshot_id: str | None) -> dg.ExecuteInProcessResult:
    """The publish job, bound to an audited build's snapshot by its run tag."""
    job = make_definitions(dep.config, dep.home).resolve_job_def("publish")
    tags = {SNAPSHOT_TAG: snapshot_id} if snapshot_id else None
    return job.execute_in_process(instance=dep.instance, raise_on_error=False, tags=tags)


@pytest.mark.slow
def test_planted_near_duplicate_blocks_the_release(deployment: Deployment) -> None:
    dep = deployment
    consent_most(dep)
    audited = run_build(dep.home, dep.config, instance=dep.instance, selection=UP_TO_AUDIT)
    assert audited.version is None and audited.checks and all(audited.checks.values())
    # an audited image is replaced on disk by a copy of a real source
    snapshot = dep.catalog.snapshot_for_run(audited.run_id)
    victim = kept_candidates(dep.catalog, snapshot.snapshot_id)[0]
    source = dep.catalog.sources()[0]
    size = dep.config.generator.image_size
    Image.open(dep.home / source.image_path).resize((size, size)).save(dep.home / victim.image_path)

    unbound = report_of(_checks_then_release(dep, None))  # no snapshot of its own: refused
    assert not unbound.success and "took no consent snapshot" in unbound.failure
    result = _checks_then_release(dep, snapshot.snapshot_id)
    report = report_of(result)
    assert report.checks["no_near_duplicates"] is False
    # the one line names the check, how many images, the worst offender's metric and value
    # against its threshold, the run and the UI page; the check's metadata holds the same
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_near_duplicates"]
    meta = {k: v.value for k, v in found[0].metadata.items()}
    assert meta["worst_candidate"] == victim.candidate_id and meta["flagged"] == 1
    value, limit = meta["worst_value"], meta["worst_threshold"]
    assert value <= limit if meta["worst_flag_when"] == "<=" else value >= limit
    assert report.failure.startswith(
        f"release blocked by check no_near_duplicates: 1 of {meta['images']} images are "
        f"near-duplicates of a source; worst offender {victim.candidate_id}: "
        f"{meta['worst_metric']} {value:.4g} against threshold {meta['worst_flag_when']} {limit:.4g}")
    assert report.failure.endswith(f"run {report.run_id}: `consentgen ui`, then "
                                   f"http://127.0.0.1:3000/runs/{report.run_id}")
    assert report.version is None and not report.success
    assert not releases_root(dep.home).exists() or not any(releases_root(dep.home).iterdir())
    assert dep.catalog.select(Release) == []


@pytest.mark.slow
def test_failure_mid_publish_leaves_no_visible_release(deployment: Deployment) -> None:
    dep = deployment
    consent_most(dep)
    audited = run_build(dep.home, dep.config, instance=dep.instance, selection=UP_TO_AUDIT)
    assert audited.version is None
    snapshot = dep.catalog.snapshot_for_run(audited.run_id)
    kept = kept_candidates(dep.catalog, snapshot.snapshot_id)
    os.remove(dep.home / kept[-1].image_path)  # the disk loses a file half-way through
    with pytest.raises(ReleaseError, match="nothing published"):
        publish(dep.catalog, dep.ledger, snapshot, dep.config)
    root = releases_root(dep.home)
    assert sorted(p.name for p in root.iterdir()) == []  # no version, no temp folder, no LATEST
    assert dep.catalog.select(Release) == [] and dep.catalog.select(ReleaseImage) == []


@pytest.mark.slow
def test_multiprocess_build_trains_each_shard_in_its_own_process(deployment: Deployment) -> None:
    """The multiprocess executor runs every step (each shard's training too) in a process
    of its own, against the same catalog, and still publishes one release."""
    dep = deployment
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    instance = instance_for(dep.home)  # persistent: each step's process reads the run from it
    report = run_build(dep.home, dep.config, instance=instance, parallel=2)
    assert report.success, report.failure
    assert report.version == "v0001" and report.retrained == dep.config.shards
    pids = {e.dagster_event.step_key: e.dagster_event.pid for e in instance.all_logs(report.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
    shard_pids = {pids[f"shard_models__shard_{s}"] for s in range(dep.config.shards)}
    assert len(shard_pids) == dep.config.shards and os.getpid() not in shard_pids
    models = dep.catalog.select(ShardModel, "ORDER BY shard")
    assert [m.shard for m in models] == list(range(dep.config.shards))
    assert all((dep.home / m.model_path).is_dir() for m in models)
