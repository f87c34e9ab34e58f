"""DP-SGD: exact per-sample gradients through attention, and an accountant-computed ε.

The per-sample gradient check is the guard against Opacus' "hooks" trap (zero
per-sample gradients for convs whose input is non-contiguous, i.e. after attention): it
compares, for EVERY parameter of a UNet with attention, what the training path's
Opacus wrapper computes with one-sample-at-a-time backward passes.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from opacus import GradSampleModule
from torch.utils.data import TensorDataset

from consentgen.errors import GeneratorError
from generators.checkpoints import load_checkpoint, save_checkpoint
from generators.config import DiffusionConfig, DPConfig
from generators.dp import ACCOUNTANT, GRAD_SAMPLE_MODE, make_private, quiet_known_warnings
from generators.presets import new_unet
from generators.schedules import training_scheduler
from generators.training import denoising_loss, train_diffusion
from tests.generators.conftest import record_ids, tiny_config

BATCH = 3


def _fixed_batch(config: DiffusionConfig) -> tuple[torch.Tensor, ...]:
    rng = torch.Generator().manual_seed(0)
    size = config.image_size
    clean = torch.rand((BATCH, config.channels, size, size), generator=rng) * 2 - 1
    labels = torch.tensor([0, 1, 1])
    noise = torch.randn(clean.shape, generator=rng)
    timesteps = torch.tensor([5, 480, 990])  # near-clean, middle, near-noise
    return clean, labels, noise, timesteps


def _reference_per_sample_grads(config: DiffusionConfig) -> dict[str, torch.Tensor]:
    """One backward pass per sample on a fresh copy of the same initial weights."""
    unet = new_unet(config)
    scheduler = training_scheduler(config)
    clean, labels, noise, timesteps = _fixed_batch(config)
    per_sample: dict[str, list[torch.Tensor]] = {name: [] for name, _ in unet.named_parameters()}
    for i in range(BATCH):
        unet.zero_grad(set_to_none=True)
        one = slice(i, i + 1)
        denoising_loss(
            unet, scheduler, clean[one], labels[one], noise[one], timesteps[one]
        ).sum().backward()
        for name, param in unet.named_parameters():
            per_sample[name].append(param.grad.detach().clone())
    return {name: torch.stack(grads) for name, grads in per_sample.items()}


def _mismatches(
    wrapped: torch.nn.Module, unet: torch.nn.Module, config: DiffusionConfig
) -> list[str]:
    """Parameters whose Opacus per-sample gradients differ from the reference."""
    clean, labels, noise, timesteps = _fixed_batch(config)
    with quiet_known_warnings():
        denoising_loss(
            wrapped, training_scheduler(config), clean, labels, noise, timesteps
        ).sum().backward()
    reference = _reference_per_sample_grads(config)
    bad = []
    for name, param in unet.named_parameters():
        expected = reference[name]
        assert expected.abs().sum() > 0, (
            f"{name}: reference gradient is zero; the test would be blind"
        )
        if param.grad_sample is None or not torch.allclose(
            param.grad_sample, expected, rtol=1e-4, atol=1e-6
        ):
            bad.append(name)
    return bad


def test_training_path_per_sample_grads_equal_single_sample_backward_for_every_parameter() -> None:
    config = tiny_config(num_classes=2)
    unet = new_unet(config)
    has_attention = any("attention" in name for name, _ in unet.named_parameters())
    assert has_attention and "mid_block.attentions.0.to_q.weight" in dict(unet.named_parameters())
    images = TensorDataset(torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))
    private = make_private(
        unet,
        torch.optim.SGD(unet.parameters(), lr=0.1),
        images,
        DPConfig(epsilon=5.0, delta=1e-3),
        batch_size=4,
        epochs=1,
        generator=torch.Generator().manual_seed(0),
        loss_reduction="sum",
    )
    assert GRAD_SAMPLE_MODE == "functorch"
    assert _mismatches(private.module, unet, config) == []
    assert len(list(unet.parameters())) > 50  # every parameter was compared, not a few


def test_the_check_catches_the_opacus_hooks_trap() -> None:
    """Opacus 1.6 "hooks" mode: zero per-sample grads for convs after attention.

    If this starts failing, Opacus fixed the trap; the functorch choice can be revisited.
    """
    config = tiny_config(num_classes=2)
    unet = new_unet(config)
    hooks = GradSampleModule(unet, batch_first=True, loss_reduction="sum", force_functorch=False)
    try:
        bad = _mismatches(hooks, unet, config)
    finally:
        hooks._close()
    assert "mid_block.resnets.1.conv1.weight" in bad, bad  # the conv right after mid attention


def test_dp_training_reports_the_accountants_finite_epsilon(tiny_data, tmp_path: Path) -> None:
    images, labels = tiny_data
    config = tiny_config(
        train_steps=None, epochs=2, batch_size=8, dp={"epsilon": 6.0, "delta": 1e-3}
    )
    trained = train_diffusion(images, labels, config, record_ids=record_ids(16))
    record = trained.record
    assert record.epsilon is not None and math.isfinite(record.epsilon)
    assert 0.5 * 6.0 < record.epsilon <= 6.0 * 1.01  # the budget is spent, not exceeded
    assert record.delta == 1e-3 and record.noise_multiplier > 0 and record.accountant == ACCOUNTANT
    assert record.steps == 4 and "opacus" in record.versions
    save_checkpoint(trained, tmp_path / "dp")
    assert load_checkpoint(tmp_path / "dp").epsilon == record.epsilon


def test_stopping_early_spends_less_than_the_budget(tiny_data) -> None:
    images, labels = tiny_data
    # batch 1 over 16 records: Poisson batches are often empty (noise-only steps)
    config = tiny_config(train_steps=6, batch_size=1, dp={"epsilon": 6.0, "delta": 1e-3})
    trained = train_diffusion(images, labels, config, record_ids=record_ids(16))
    assert trained.record.steps == 6
    assert 0 < trained.record.epsilon < 6.0


def test_delta_not_below_one_over_n_is_refused(tiny_data) -> None:
    images, labels = tiny_data
    config = tiny_config(dp={"epsilon": 6.0, "delta": 0.1})
    with pytest.raises(GeneratorError, match="delta"):
        train_diffusion(images, labels, config, record_ids=record_ids(16))
