"""DP-SGD for the diffusion UNet through Opacus: what had to change, and why.

- `grad_sample_mode="functorch"`: Opacus' default "hooks" mode computes conv per-sample
  gradients with an unfold that silently yields ZERO for a conv whose input is not
  contiguous, which is every conv right after an attention block in `UNet2DModel` (the
  mid block's second resnet, for one). functorch mode recomputes each layer's gradient
  with `vmap(grad(...))` and is exact (tests/generators/test_dp.py compares it with
  one-sample-at-a-time backward passes for every parameter). "ew" mode fails on
  diffusers reading `self.dtype` inside forward.
- No module had to be replaced: `UNet2DModel` has GroupNorm (not BatchNorm), Linear,
  Conv2d and Embedding layers, all of which Opacus supports; `ModuleValidator` is still
  run, so a preset that adds an unsupported layer fails with its name.
- Poisson sampling (`DPDataLoader`), as the accountant assumes. A Poisson batch can be
  empty; that step still runs (zero clipped gradients plus noise), because skipping it
  would change the sampling the accountant accounts for.
- `make_private_with_epsilon` with the RDP accountant; the ε recorded with a model is the
  accountant's `get_epsilon(delta)` after the last step actually taken, never the target
  (stopping early therefore records less than the target).
- Noise comes from a seeded torch generator (Opacus `secure_mode` needs torchcsprng,
  which is not in the stack); that makes runs reproducible, and it is what an auditor
  re-running a build needs, but it is not a cryptographically secure noise source.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from opacus import GradSampleModule, PrivacyEngine
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch.utils.data import DataLoader, TensorDataset

from consentgen.errors import GeneratorError
from generators.config import DPConfig

GRAD_SAMPLE_MODE = "functorch"
ACCOUNTANT = "rdp"


@dataclass
class PrivateTraining:
    """The Opacus-wrapped pieces of one DP training run."""

    engine: PrivacyEngine
    module: GradSampleModule
    optimizer: DPOptimizer
    loader: DataLoader
    delta: float

    @property
    def noise_multiplier(self) -> float:
        return float(self.optimizer.noise_multiplier)

    def spent_epsilon(self) -> float:
        """ε spent so far, as the accountant computes it for this run's δ."""
        epsilon = float(self.engine.get_epsilon(self.delta))
        if not math.isfinite(epsilon):
            raise GeneratorError(
                f"the privacy accountant returned a non-finite epsilon ({epsilon})"
            )
        return epsilon

    def noise_only_step(self) -> None:
        """One DP step for an empty Poisson batch: zero per-sample gradients plus noise."""
        for param in self.optimizer.params:
            param.grad_sample = torch.zeros(
                (0, *param.shape), dtype=param.dtype, device=param.device
            )
        self.optimizer.step()


@contextlib.contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Silence two per-step warnings that are expected here and say nothing actionable.

    Opacus' functorch path tries to autocast a layer whose input dtype differs from its
    weights, which for the class embedding (int64 labels) only means "no autocast"; and
    torch warns that the full backward hooks fire although the inputs need no gradient.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        yield


def make_private(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: TensorDataset,
    dp: DPConfig,
    *,
    batch_size: int,
    epochs: int,
    generator: torch.Generator,
    loss_reduction: str = "mean",
) -> PrivateTraining:
    """Wrap model, optimizer and data for DP-SGD at the budget `dp` over `epochs` passes.

    `loss_reduction` must match how the training loss is reduced over the batch ("mean"
    in training; tests use "sum" to compare with single-sample gradients).
    """
    count = len(dataset)
    if dp.delta >= 1.0 / count:
        raise GeneratorError(
            f"dp.delta={dp.delta} must be below 1/N = {1.0 / count:.3g} for {count} records; "
            "a larger delta allows releasing whole records"
        )
    problems = ModuleValidator.validate(module, strict=False)
    if problems:
        raise GeneratorError(f"Opacus cannot train this model privately: {problems}")
    loader = DataLoader(dataset, batch_size=min(batch_size, count), generator=generator)
    engine = PrivacyEngine(accountant=ACCOUNTANT)
    try:
        wrapped, dp_optimizer, dp_loader = engine.make_private_with_epsilon(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=dp.epsilon,
            target_delta=dp.delta,
            epochs=epochs,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=GRAD_SAMPLE_MODE,
            loss_reduction=loss_reduction,
            noise_generator=generator,
        )
    except ValueError as exc:  # e.g. no noise multiplier reaches the target epsilon
        raise GeneratorError(f"cannot set up DP-SGD for epsilon={dp.epsilon}: {exc}") from exc
    return PrivateTraining(engine, wrapped, dp_optimizer, dp_loader, dp.delta)
