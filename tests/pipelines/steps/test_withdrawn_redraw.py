"""A withdrawn image is never drawn again, and a rebuild keeps what was not withdrawn.

An operator withdraws one image (`withdraw_image`); the next build of the same shard keeps
the shard's other audited images and draws only the slot that is now empty, with a seed
of the new snapshot, never again on the (record, seed) of a banned img2img candidate: on
CUDA (fp16) the same draw is not bit-identical, so the pixel ban alone would miss a
near-identical copy. Real builds: tiny random Stable Diffusion components, a tiny DDPM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.events import utc_now
from pipelines.catalog import Ban, Candidate, ReleaseImage
from pipelines.defs.runner import run_build
from pipelines.settings import BuildConfig, GeneratorSettings, quick_profile
from pipelines.steps.bans import file_pixel_hash
from pipelines.steps.conditioning import (
    Slot,
    banned_draws,
    check_weights,
    condition_candidates,
    img2img_config,
    set_records,
)
from pipelines.steps.shard_training import current_models
from pipelines.steps.withdrawal import withdraw_image
from tests.pipelines.conftest import PURPOSE, Deployment
from tests.tiny_sd import save_tiny_sd


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def img2img(weights_dir: Path) -> BuildConfig:
    generator = GeneratorSettings(kind="img2img", weights_dir=weights_dir, image_size=16,
                                  sample_steps=2, strength=0.5, guidance=1.0, batch_size=8)
    return quick_profile(generator=generator, images_per_shard=4)


def release_candidates(dep: Deployment, version: str) -> dict[str, Candidate]:
    """candidate id -> candidate, for the images a release published."""
    images = dep.catalog.select(ReleaseImage, "WHERE version = ?", [version])
    by_id = {c.candidate_id: c for c in dep.catalog.select(Candidate)}
    return {i.candidate_id: by_id[i.candidate_id] for i in images}


def withdraw_one_and_rebuild(dep: Deployment, config: BuildConfig
                             ) -> tuple[Candidate, str, dict[str, Candidate], dict[str, Candidate], str]:
    """Build v0001, withdraw its first image, build v0002: (the withdrawn candidate, its
    pixel hash, v0001's candidates, v0002's, v0002's run id)."""
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    first = run_build(dep.home, config, instance=dep.instance)
    assert first.success and first.version == "v0001", first.failure
    v1 = release_candidates(dep, "v0001")
    image = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")[0]
    gone = v1[image.candidate_id]
    pixels = file_pixel_hash(dep.home / gone.image_path)
    assert pixels is not None
    out = withdraw_image(dep.catalog, image.image_id, config, note="looks like me")
    assert out.withdrawn == {"v0001": [image.image_id]}

    second = run_build(dep.home, config, instance=dep.instance)
    assert second.success and second.version == "v0002", second.failure
    assert second.retrained == 0  # nothing about the shards changed: no new model or set
    return gone, pixels, v1, release_candidates(dep, "v0002"), second.run_id


def assert_only_the_slot_is_new(config: BuildConfig, gone: Candidate, pixels: str,
                                v1: dict[str, Candidate], v2: dict[str, Candidate]) -> list[Candidate]:
    assert gone.candidate_id not in v2
    assert set(v1) - {gone.candidate_id} <= set(v2)  # every other image is kept as it was
    new = [c for cid, c in v2.items() if cid not in v1]
    assert len(v2) == len(v1) and len(new) == 1
    assert (new[0].shard, new[0].label) == (gone.shard, gone.label)  # the empty slot's
    assert sum(c.shard == gone.shard for c in v2.values()) == config.images_per_shard
    return new


@pytest.mark.slow
def test_a_withdrawn_img2img_image_is_redrawn_alone_never_on_its_draw(deployment: Deployment,
                                                                       sd_folder: Path) -> None:
    dep = deployment
    config = img2img(sd_folder)
    gone, pixels, v1, v2, run_id = withdraw_one_and_rebuild(dep, config)
    new = assert_only_the_slot_is_new(config, gone, pixels, v1, v2)
    assert new[0].conditioned_on is not None
    assert (new[0].conditioned_on, new[0].seed) != (gone.conditioned_on, gone.seed)
    assert banned_draws(dep.catalog) == {(gone.conditioned_on, gone.seed)}
    drawn_since = [c for c in dep.catalog.select(Candidate) if c.created_at > gone.created_at]
    assert drawn_since  # the slot's image, and any audit replacement of it
    for c in drawn_since:
        assert (c.conditioned_on, c.seed) != (gone.conditioned_on, gone.seed)
        assert file_pixel_hash(dep.home / c.image_path) != pixels

    # a banned candidate whose pixels were never banned (its file was gone, or the same
    # draw is not bit-identical on this device): its (record, seed) is still not drawn
    other = min((c for c in v2.values() if c.candidate_id != new[0].candidate_id),
                key=lambda c: c.candidate_id)
    dep.catalog.add([Ban(kind="candidate", value=other.candidate_id, reason="ImageWithdrawn",
                         version="v0002", image_id=None, banned_at=utc_now())])
    snapshot = dep.catalog.snapshot_for_run(run_id)
    model = current_models(dep.catalog, snapshot, config)[other.shard]
    record = next(r for r in set_records(dep.catalog, snapshot, model)
                  if r.record_id == other.conditioned_on)
    again = condition_candidates(dep.catalog, snapshot, model, [Slot(record, other.seed)], config)
    assert len(again) == 1 and again[0].conditioned_on == other.conditioned_on
    assert again[0].seed != other.seed
    assert file_pixel_hash(dep.home / again[0].image_path) != file_pixel_hash(
        dep.home / other.image_path)


@pytest.mark.slow
def test_a_withdrawn_ddpm_sample_is_redrawn_alone(deployment: Deployment) -> None:
    dep = deployment
    gone, pixels, v1, v2, _ = withdraw_one_and_rebuild(dep, dep.config)
    new = assert_only_the_slot_is_new(dep.config, gone, pixels, v1, v2)
    assert file_pixel_hash(dep.home / new[0].image_path) != pixels


def test_weights_dir_with_a_tilde_is_the_home_folder(sd_folder: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    save_tiny_sd(tmp_path / "sd")
    config = img2img(Path("~/sd"))
    assert img2img_config(config).weights_dir == tmp_path / "sd"
    check_weights(config)  # the folder the run loads: found


def test_too_few_steps_for_the_strength_are_refused_with_the_settings() -> None:
    with pytest.raises(ValueError, match=r"sample_steps \* strength \(1 \* 0.5\)"):
        GeneratorSettings(kind="img2img", weights_dir=Path("/sd"), sample_steps=1, strength=0.5)
    assert GeneratorSettings(kind="img2img", weights_dir=Path("/sd"), sample_steps=2,
                             strength=0.5).sample_steps == 2
