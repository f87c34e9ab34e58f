"""`[generator] kind = "img2img"`: the same Dagster job, audit, checks and release as the
DDPM, with tiny random Stable Diffusion components saved to a folder (`tests.tiny_sd`).

Each published image is conditioned on exactly one record of its shard, recorded in
`candidates.conditioned_on`; a revocation withdraws exactly the images conditioned on that
subject's records, and erasure deletes exactly those candidates' files. A missing weights
folder is refused in one line before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from consentgen.errors import MissingWeightsError
from pipelines.catalog import (
    Candidate,
    EligibleRecord,
    Erasure,
    ModelRecord,
    ReleaseImage,
    ShardModel,
    Withdrawal,
)
from pipelines.defs.runner import run_build
from pipelines.settings import BuildConfig, GeneratorSettings, quick_profile
from pipelines.steps.conditioning import (
    CONDITIONING_PREFIX,
    MANIFEST_FILE,
    check_weights,
    conditioning_fingerprint,
    conditioning_plan,
    img2img_config,
    open_slots,
    replacement_slots,
)
from pipelines.steps.candidate_files import unfilled
from pipelines.steps.candidates import replacement_candidates
from pipelines.steps.erasure_record import erasure_record
from pipelines.steps.reconcile import reconcile
from pipelines.steps.shard_training import current_models
from pipelines.steps.release import WITHDRAWN, releases_root
from tests.pipelines.conftest import PURPOSE, Deployment
from tests.tiny_sd import save_tiny_sd

CLI = str(Path(sys.executable).with_name("consentgen"))


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def img2img(weights_dir: Path, **overrides: object) -> BuildConfig:
    generator = GeneratorSettings(kind="img2img", weights_dir=weights_dir, image_size=16,
                                  sample_steps=2, strength=0.5, guidance=1.0, batch_size=8)
    return quick_profile(generator=generator, images_per_shard=4, **overrides)


def record(record_id: str, label: object, shard: int = 0) -> EligibleRecord:
    return EligibleRecord(snapshot_id="s", record_id=record_id, subject_id=f"subj-{record_id}",
                          label=label, shard=shard, role="train")


# --- the plan: which record each image is conditioned on ------------------------------


def test_the_plan_is_class_balanced_stable_and_conditions_each_slot_on_one_record() -> None:
    label_a, label_b = record("x", "0").label, record("x", "1").label  # as the catalog holds them
    records = [record(f"a{i}", label_a) for i in range(5)] + [record(f"b{i}", label_b) for i in range(2)]
    plan = conditioning_plan(records, 6, seed=3, shard=0, snapshot_id="s1")
    assert Counter(s.record.label for s in plan) == {label_a: 3, label_b: 3}
    assert [s.record.record_id for s in plan] == [
        s.record.record_id for s in conditioning_plan(records[::-1], 6, 3, 0, "s1")]
    # class b has 2 records for 3 slots: one record twice, with two different seeds
    b_slots = [s for s in plan if s.record.label == label_b]
    assert len({s.record.record_id for s in b_slots}) == 2
    assert len({(s.record.record_id, s.seed) for s in plan}) == 6
    assert len({s.record.record_id for s in plan if s.record.label == label_a}) == 3  # no repeats
    other = conditioning_plan(records, 6, seed=4, shard=0, snapshot_id="s1")
    assert [s.seed for s in other] != [s.seed for s in plan]
    # another build (snapshot) of the same set: the same records, none of the same draws
    later = conditioning_plan(records, 6, seed=3, shard=0, snapshot_id="s2")
    assert [s.record.record_id for s in later] == [s.record.record_id for s in plan]
    assert not {s.seed for s in later} & {s.seed for s in plan}


def test_a_replacement_is_conditioned_on_the_next_record_of_its_class() -> None:
    records = [record(f"a{i}", record("x", "0").label) for i in range(3)]
    first = conditioning_plan(records, 1, seed=0, shard=0, snapshot_id="s1")[0]
    flagged = Candidate(candidate_id="c1", snapshot_id="s", shard=0, model_version="m",
                        label=first.record.label, seed=first.seed, image_path="candidates/c1.png",
                        created_at="2026-01-01T00:00:00Z", conditioned_on=first.record.record_id)
    one, two = (replacement_slots(records, [flagged], 0, 0, r, "s1")[0] for r in (1, 2))
    assert len({first.record.record_id, one.record.record_id, two.record.record_id}) == 3
    assert one.record.label == first.record.label and one.seed != two.seed
    assert replacement_slots(records, [flagged], 0, 0, 1, "s2")[0].seed != one.seed


def kept_candidate(record_id: str, label: object) -> Candidate:
    return Candidate(candidate_id=f"c-{record_id}", snapshot_id="s0", shard=0, model_version="m",
                     label=label, seed=1, image_path=f"candidates/c-{record_id}.png",
                     created_at="2026-01-01T00:00:00Z", conditioned_on=record_id)


def test_kept_candidates_leave_only_their_empty_slots_to_draw() -> None:
    label_a, label_b = record("x", "0").label, record("x", "1").label
    records = [record(f"a{i}", label_a) for i in range(3)] + [record(f"b{i}", label_b) for i in range(3)]
    plan = conditioning_plan(records, 6, seed=0, shard=0, snapshot_id="s1")
    assert [s.record.label for s in plan] == [label_a, label_b] * 3
    assert open_slots(plan, []) == plan
    kept = [kept_candidate(s.record.record_id, s.record.label) for s in plan if s is not plan[2]]
    assert open_slots(plan, kept) == [plan[2]]  # the one record without its image
    # a kept audit replacement stands on another record of its class (here plan[1]'s):
    # it fills that class's slot, not the last one, so the classes stay balanced
    moved = [kept[0], *kept[2:], kept_candidate("b-new", label_b)]
    assert open_slots(plan, moved) == [plan[2]]
    # more than the plan holds: nothing to draw; a class the plan has not: the last slot
    assert open_slots(plan, [*kept, kept_candidate("z", "zz")]) == []
    assert open_slots(plan, [kept_candidate("z", "zz")]) == plan[:-1]
    assert unfilled(["0", "1", "0", "1"], [kept_candidate("q", "1")],
                    [lambda label, c: label == c.label]) == ["0", "0", "1"]


# --- settings and the weights folder ---------------------------------------------------


def test_settings_map_onto_the_img2img_config_and_name_the_weights(sd_folder: Path,
                                                                   tmp_path: Path) -> None:
    config = img2img(sd_folder, seed=5)
    cfg = img2img_config(config)
    assert (cfg.weights_dir, cfg.image_size, cfg.steps, cfg.strength, cfg.guidance, cfg.seed,
            cfg.batch_size) == (sd_folder, 16, 2, 0.5, 1.0, 5, 8)
    check_weights(config)
    fp = conditioning_fingerprint(["r1", "r2"], config)
    assert fp.startswith(CONDITIONING_PREFIX) and fp == conditioning_fingerprint(["r2", "r1"], config)
    assert fp != conditioning_fingerprint(["r1"], config)
    assert fp != conditioning_fingerprint(["r1", "r2"], img2img(sd_folder, seed=6))
    # other weights (a changed config file), same folder name: another fingerprint
    copy = tmp_path / "copy"
    save_tiny_sd(copy)
    assert conditioning_fingerprint(["r1", "r2"], img2img(copy, seed=5)) == fp
    scheduler = copy / "scheduler" / "scheduler_config.json"
    scheduler.write_text(scheduler.read_text().replace("0.012", "0.013"))
    assert conditioning_fingerprint(["r1", "r2"], img2img(copy, seed=5)) != fp


def test_a_missing_folder_or_model_index_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"no folder .*nowhere") as missing:
        check_weights(img2img(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="no model_index.json") as empty:
        check_weights(img2img(tmp_path / "empty"))
    assert "\n" not in str(missing.value) + str(empty.value)
    check_weights(quick_profile())  # ddpm: nothing to check


# --- end to end -------------------------------------------------------------------------


def _conditioned(dep: Deployment, version: str) -> dict[str, Candidate]:
    """image id -> its candidate, for a release."""
    images = dep.catalog.select(ReleaseImage, "WHERE version = ?", [version])
    by_id = {c.candidate_id: c for c in dep.catalog.select(Candidate)}
    return {i.image_id: by_id[i.candidate_id] for i in images}


@pytest.mark.slow
def test_img2img_build_lineage_revocation_and_erasure(deployment: Deployment,
                                                      sd_folder: Path) -> None:
    dep = deployment
    config = img2img(sd_folder)
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)

    first = run_build(dep.home, config, instance=dep.instance)
    assert first.success and first.version == "v0001", first.failure
    assert all(first.checks.values()) and first.checks

    # nothing trained: each shard's "model" is its conditioning set, a manifest of records
    sets = dep.catalog.select(ShardModel)
    assert len(sets) == config.shards
    assert all(m.fingerprint.startswith(CONDITIONING_PREFIX) for m in sets)
    assert all((dep.home / m.model_path / MANIFEST_FILE).is_file() for m in sets)
    assert not list((dep.home / "models").rglob("*.safetensors"))

    images = _conditioned(dep, "v0001")
    assert len(images) == config.shards * config.images_per_shard
    train = {(r.shard, r.record_id): r for r in dep.catalog.select(
        EligibleRecord, "WHERE role = 'train'")}
    for c in images.values():  # exactly one record, of the candidate's own shard
        assert c.conditioned_on is not None and (c.shard, c.conditioned_on) in train
        assert c.label == train[(c.shard, c.conditioned_on)].label
    v1 = releases_root(dep.home) / "v0001"
    published = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001'")
    with Image.open(v1 / published[0].file_name) as im:
        assert im.mode == "L" and im.size == (16, 16)
    assert np.asarray(Image.open(v1 / published[0].file_name)).std() > 0
    manifest = pq.read_table(v1 / "manifest.parquet").to_pandas()
    assert set(manifest["generator"]) == {"img2img"}
    assert not {c for c in manifest.columns if any(w in c for w in ("subject", "record", "source"))}
    card = json.loads((v1 / "card" / "card.json").read_text())
    assert card["generator"]["kind"] == "img2img" and card["generator"]["epochs"] is None
    assert any("img2img trains no model" in n for n in card["notices"])

    # an audit replacement: same shard and label, conditioned on another record of the class
    snapshot = dep.catalog.snapshot_for_run(first.run_id)
    models = current_models(dep.catalog, snapshot, config)
    slot = next(iter(images.values()))
    same_class = [r for (shard, _), r in train.items() if shard == slot.shard and r.label == slot.label]
    fresh = replacement_candidates(dep.catalog, snapshot, config, models, [slot], 1)[0]
    assert (fresh.shard, fresh.label, fresh.model_version) == (slot.shard, slot.label, slot.model_version)
    assert fresh.conditioned_on in {r.record_id for r in same_class}
    assert (fresh.conditioned_on != slot.conditioned_on) == (len(same_class) > 1)
    assert (dep.home / fresh.image_path).is_file()
    dep.catalog.add([fresh])  # on record, as the audit records its replacements

    # a subject behind some (not all) images of a shard revokes
    subject_of = {r.record_id: r.subject_id for r in dep.catalog.select(ModelRecord)}
    behind = Counter(subject_of[c.conditioned_on] for c in images.values())
    victim = sorted(behind, key=lambda s: (-behind[s], s))[0]
    victim_records = {r for r, s in subject_of.items() if s == victim}
    victim_shard = {c.shard for c in images.values() if c.conditioned_on in victim_records}
    tainted = {i for i, c in images.items() if c.conditioned_on in victim_records}
    spared_in_shard = {i for i, c in images.items()
                       if c.shard in victim_shard and c.conditioned_on not in victim_records}
    assert tainted and spared_in_shard  # the shard's other images stand on others only
    revoke = dep.ledger.revoke(victim, PURPOSE)

    report = reconcile(dep.catalog, dep.ledger, config)
    withdrawn = dep.catalog.select(Withdrawal)
    assert {w.image_id for w in withdrawn} == tainted and report.count == len(tainted)
    assert {w.subject_id for w in withdrawn} == {victim} and {w.event_seq for w in withdrawn} == {revoke.seq}
    assert sorted((v1 / WITHDRAWN).read_text().split()) == sorted(tainted)
    file_of = {i.image_id: i.file_name for i in published}
    assert all(not (v1 / file_of[i]).exists() for i in tainted)
    assert all((v1 / file_of[i]).exists() for i in images.keys() - tainted)
    assert report.stale_shards == sorted(victim_shard)

    # erasure: exactly the candidates conditioned on the victim's records, flagged and
    # replacements included; every other candidate keeps its file, and no set is erased
    everything = dep.catalog.select(Candidate)
    theirs = {c.candidate_id for c in everything if c.conditioned_on in victim_records}
    erased = dep.catalog.select(Erasure, "WHERE kind = 'candidate'")
    assert {e.ref for e in erased} == theirs and {e.subject_id for e in erased} == {victim}
    assert all(not (dep.home / c.image_path).exists() for c in everything if c.candidate_id in theirs)
    assert all((dep.home / c.image_path).exists() for c in everything if c.candidate_id not in theirs)
    assert not dep.catalog.select(Erasure, "WHERE kind = 'checkpoint'")
    assert all((dep.home / m.model_path).exists() for m in sets)

    # the DPO's record follows conditioned_on too: the victim's images, and another
    # subject of the same shard, who stays, stands behind only their own
    record = erasure_record(dep.catalog, dep.ledger, config, victim)
    assert [(w.version, w.images) for w in record.withdrawn] == [("v0001", len(tainted))]
    assert {e.ref for e in record.erased if e.kind == "candidate"} == theirs
    assert not [r for r in record.remains if r.kind in {"candidate", "published", "checkpoint"}]
    other = subject_of[images[min(spared_in_shard)].conditioned_on]
    theirs_published = {i for i, c in images.items() if subject_of[c.conditioned_on] == other}
    stays = erasure_record(dep.catalog, dep.ledger, config, other)
    assert stays.withdrawn == [] and not stays.consent.ended
    assert {r.ref.split("/")[1] for r in stays.remains if r.kind == "published"} == theirs_published

    # the stale shard is rebuilt: nothing of the victim in the new release
    second = run_build(dep.home, config, shards=report.stale_shards, instance=dep.instance)
    assert second.success and second.version == "v0002", second.failure
    again = _conditioned(dep, "v0002")
    assert again and not {c.conditioned_on for c in again.values()} & victim_records
    assert {c.shard for c in again.values()} == set(range(config.shards))


@pytest.mark.slow
def test_a_missing_weights_folder_fails_in_one_line_before_any_work(deployment: Deployment,
                                                                    tmp_path: Path) -> None:
    dep = deployment
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    report = run_build(dep.home, img2img(tmp_path / "nowhere"), instance=dep.instance)
    assert not report.success and report.failure is not None
    assert report.failure.startswith("generator.weights_dir: no folder") and "\n" not in report.failure
    assert not dep.catalog.select(ShardModel) and not dep.catalog.select(EligibleRecord)

    build_file = tmp_path / "consentgen.toml"
    build_file.write_text('profile = "test"\n[generator]\nkind = "img2img"\n'
                          f'weights_dir = "{(tmp_path / "empty").as_posix()}"\nimage_size = 16\n')
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "CONSENTGEN_HOME": str(dep.home), "COLUMNS": "300"}
    done = subprocess.run([CLI, "build", "--config", str(build_file)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "model_index.json" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not dep.catalog.select(ShardModel) and not dep.catalog.select(EligibleRecord)
