"""Generator throughput on this machine, as ratios against baselines from the same process.

Figures (one JSON line appended to bench/results/generators.jsonl):
- training images/s (end-to-end `train_diffusion`: EMA, LR schedule, clipping) and DDIM
  sampling images/s at 25 and 50 steps, float32 and bf16 autocast, for the `tiny` and
  `small` presets at 32 and 64 px, 1 channel;
- diffusers' stock `DDPMPipeline` (1000 steps) on the same UNet weights, against our
  DDIM-50 at the same batch size and dtype (DDPMPipeline cannot pass class labels, so it
  runs an unconditional copy of the UNet: same layers and weights minus the class
  embedding, a single lookup);
- DP-SGD slowdown (Opacus, functorch per-sample gradients) against non-DP, same config,
  per training step (Opacus' one-off per-layer setup on the first step reported apart);
- bf16 autocast against float32 sampling: speed and mean pixel difference.

Each figure is the best of a few short repeats: these 2-core machines are shared, and
contention only ever slows a run down. Load averages at start and end go with the line,
and so does OMP_WAIT_POLICY: under contention torch's spinning OpenMP threads lose up to
5x (measured 14 vs 45-75 img/s for small@32 training with PASSIVE), so a run on a busy
machine is only comparable with one taken under the same policy.
Run from the repository root:  .venv/bin/python bench/generators.py  [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DDPMPipeline, UNet2DModel  # noqa: E402

from bench._results import timed, write_result  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from generators.config import DiffusionConfig, DPConfig  # noqa: E402
from generators.dp import make_private, quiet_known_warnings  # noqa: E402
from generators.presets import new_unet, unet_kwargs  # noqa: E402
from generators.runtime import bf16_supported, configure_threads, torch_device  # noqa: E402
from generators.sampling import sample  # noqa: E402
from generators.schedules import training_scheduler  # noqa: E402
from generators.trained import TrainedGenerator  # noqa: E402
from generators.training import denoising_loss, train_diffusion  # noqa: E402

BATCH = 64
DEMO_IMAGES, DEMO_SECONDS = 2400, 240  # 4 shards of ~600 images at 32x32 in ~4 minutes
DEMO_BATCH, DEMO_LR = 16, 2e-3


def _data(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, size, size), dtype=np.uint8)
    return images, np.arange(count) % 2, [f"r{i}" for i in range(count)]


def _config(preset: str, size: int, **overrides: Any) -> DiffusionConfig:
    settings = {"train_steps": 1, "batch_size": BATCH, **overrides}
    return DiffusionConfig(preset=preset, image_size=size, num_classes=2, **settings)


def train_rate(
    preset: str, size: int, steps: int, repeat: int, batch: int = BATCH, **overrides: Any
) -> tuple[float, TrainedGenerator]:
    """End-to-end `train_diffusion` images/s over `steps` steps, best of `repeat` runs."""
    images, labels, ids = _data(batch * steps, size)
    config = _config(preset, size, train_steps=steps, batch_size=batch, **overrides)
    seconds, trained = timed(train_diffusion, images, labels, config, record_ids=ids, repeat=repeat)
    return batch * steps / seconds, trained


def step_rate(preset: str, size: int, steps: int, dp: DPConfig | None) -> tuple[float, float]:
    """Best per-step images/s of the training step alone, plain or DP-SGD, and the first step's seconds.

    Measured on the training code's own pieces (`denoising_loss`, `make_private`) so that the
    DP and plain figures differ only by Opacus; the first step, which for DP includes
    Opacus' per-layer functorch preparation, is timed apart.
    """
    config = _config(preset, size)
    images, labels, _ = _data(BATCH * 8, size)
    clean = torch.from_numpy(images[:, None]).float() / 127.5 - 1
    targets = torch.from_numpy(labels)
    unet = new_unet(config).train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    rng = torch.Generator().manual_seed(0)
    if dp is None:
        model, batches = (
            unet,
            [(clean[i : i + BATCH], targets[i : i + BATCH]) for i in range(0, len(clean), BATCH)],
        )
    else:
        private = make_private(
            unet,
            optimizer,
            TensorDataset(clean, targets),
            dp,
            batch_size=BATCH,
            epochs=1,
            generator=rng,
        )
        model, optimizer, batches = private.module, private.optimizer, list(private.loader)
    scheduler = training_scheduler(config)
    rates, first = [], 0.0
    with quiet_known_warnings():
        for x, y in batches[: steps + 1]:
            start = time.perf_counter()
            noise = torch.randn(x.shape, generator=rng)
            t = torch.randint(0, config.train_timesteps, (x.shape[0],), generator=rng)
            denoising_loss(model, scheduler, x, y, noise, t).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - start
            if first == 0.0:
                first = seconds
            else:
                rates.append(x.shape[0] / seconds)
    return max(rates), first


def sample_rate(trained: TrainedGenerator, n: int, steps: int, bf16: bool, repeat: int) -> float:
    seconds, _ = timed(
        sample, trained, n, steps=steps, seed=0, batch_size=n, bf16=bf16, repeat=repeat
    )
    return n / seconds


def ddpm_pipeline_rate(trained: TrainedGenerator, n: int) -> float:
    """diffusers' stock DDPMPipeline, 1000 steps, float32, on an unconditional twin."""
    kwargs = unet_kwargs(trained.config)
    kwargs.pop("num_class_embeds")
    twin = UNet2DModel(**kwargs)
    missing, unexpected = twin.load_state_dict(trained.unet.state_dict(), strict=False)
    assert not missing and all(k.startswith("class_embedding") for k in unexpected)
    pipeline = DDPMPipeline(
        unet=twin.to(trained.unet.device).eval(), scheduler=training_scheduler(trained.config)
    )
    pipeline.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    pipeline(
        batch_size=n,
        num_inference_steps=1000,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny at 32 px only, one repeat (smoke test)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    threads = configure_threads()
    device = torch_device()
    load_start = os.getloadavg()
    started = time.perf_counter()
    cases = (
        [("tiny", 32)] if args.quick else [("tiny", 32), ("small", 32), ("tiny", 64), ("small", 64)]
    )
    repeat = 1 if args.quick else 2
    figures: dict[str, Any] = {
        "threads": threads,
        "device": str(device),
        "batch": BATCH,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "bf16_native": bf16_supported(device),
        "quick": args.quick,
    }

    print(
        f"device {device}, {threads} torch threads, OMP_WAIT_POLICY "
        f"{figures['omp_wait_policy']}, load {load_start[0]:.2f}"
    )
    header = (
        f"{'case':<9}{'train':>8}{'DDIM25':>8}{'DDIM50':>8}{'bf16 25':>9}{'bf16 50':>9}"
        f"{'bf16 x':>8}{'DDPM1000':>10}{'DDIM50/DDPM1000':>17}"
    )
    print(header + "   (images/s; ratios in the last columns)")
    models: dict[str, TrainedGenerator] = {}
    for preset, size in cases:
        key = f"{preset}@{size}"
        # 64 px costs ~4x: one repeat, fewer images, and no 1000-step DDPM run (minutes
        # per image here; the ratio is a ratio of UNet calls, measured at 32 px)
        big = size == 64
        rep = 1 if big else repeat
        train, trained = train_rate(preset, size, 2 if big else 3, rep)
        models[key] = trained
        n = 4 if big else 32
        rates = {
            (s, b): sample_rate(trained, n, s, b, rep) for s in (25, 50) for b in (False, True)
        }
        figures[key] = {
            "train_img_s": train,
            "ddim25_img_s": rates[25, False],
            "ddim50_img_s": rates[50, False],
            "ddim25_bf16_img_s": rates[25, True],
            "ddim50_bf16_img_s": rates[50, True],
            "bf16_over_fp32_ddim25": rates[25, True] / rates[25, False],
            "bf16_over_fp32_ddim50": rates[50, True] / rates[50, False],
            "sample_batch": n,
            "params_m": sum(p.numel() for p in trained.unet.parameters()) / 1e6,
        }
        ddpm_text = f"{'-':>10}{'-':>17}"
        if not big:
            n_ddpm = 2
            ddpm = ddpm_pipeline_rate(trained, n_ddpm)
            ddim50_same_batch = sample_rate(trained, n_ddpm, 50, False, rep)
            figures[key] |= {
                "ddpm1000_pipeline_img_s": ddpm,
                "ddim50_over_ddpm1000_same_batch": ddim50_same_batch / ddpm,
                "ddpm_batch": n_ddpm,
            }
            ddpm_text = f"{ddpm:>10.3f}{ddim50_same_batch / ddpm:>16.1f}x"
        print(
            f"{key:<9}{train:>8.1f}{rates[25, False]:>8.2f}{rates[50, False]:>8.2f}"
            f"{rates[25, True]:>9.2f}{rates[50, True]:>9.2f}{figures[key]['bf16_over_fp32_ddim25']:>7.2f}x"
            + ddpm_text,
            flush=True,
        )

    # bf16 correctness next to its speed: same seed, same model, mean |difference|
    trained = models["tiny@32" if args.quick else "small@32"]
    fp32 = sample(trained, 16, steps=25, seed=1, bf16=False).astype(np.float64)
    bf16 = sample(trained, 16, steps=25, seed=1, bf16=True).astype(np.float64)
    figures["bf16_mean_abs_diff_grey_levels"] = float(np.abs(fp32 - bf16).mean())
    x = torch.randn((16, 1, 32, 32), generator=torch.Generator().manual_seed(2))
    y, t = torch.arange(16) % 2, torch.tensor(500)
    with torch.inference_mode():
        eps32 = trained.unet(x, t, class_labels=y).sample
        with torch.autocast(device.type, dtype=torch.bfloat16):
            eps16 = trained.unet(x, t, class_labels=y).sample.float()
    figures["bf16_eps_relative_error"] = float((eps32 - eps16).norm() / eps32.norm())
    print(
        f"bf16 vs fp32: DDIM-25 mean |pixel difference| {figures['bf16_mean_abs_diff_grey_levels']:.2f}/255 "
        f"(barely trained model); UNet output relative error {figures['bf16_eps_relative_error']:.4f}"
    )

    # DP-SGD against non-DP on the same config
    dp_preset = "tiny" if args.quick else "small"
    plain, _ = step_rate(dp_preset, 32, 4, None)
    private, first = step_rate(dp_preset, 32, 4, DPConfig(epsilon=8.0, delta=1e-5))
    figures["dp"] = {
        "config": f"{dp_preset}@32",
        "plain_step_img_s": plain,
        "dp_step_img_s": private,
        "slowdown": plain / private,
        "dp_first_step_s": first,
    }
    print(
        f"DP-SGD {dp_preset}@32: {private:.1f} img/s per step vs {plain:.1f} non-DP -> "
        f"{plain / private:.2f}x slower (first DP step, with Opacus setup: {first:.1f} s)"
    )

    if not args.quick:
        # The CPU demo: ~2,400 images at 32x32 over ~4 shards in ~4 minutes. Batch 16 gives
        # 4x the optimizer steps of batch 64 for ~5 % less throughput, which an
        # undertrained DDPM needs more than throughput (see generators/presets.py).
        rate, _ = train_rate("small", 32, 12, repeat, batch=DEMO_BATCH, lr=DEMO_LR)
        epochs = int(DEMO_SECONDS * rate // DEMO_IMAGES)
        figures["demo"] = {
            "preset": "small",
            "image_size": 32,
            "batch_size": DEMO_BATCH,
            "lr": DEMO_LR,
            "train_img_s": rate,
            "images": DEMO_IMAGES,
            "seconds": DEMO_SECONDS,
            "max_epochs": epochs,
            "sample_ddim50_img_s": figures["small@32"]["ddim50_bf16_img_s"],
        }
        print(
            f"demo: small@32 batch {DEMO_BATCH} trains at {rate:.0f} img/s: {DEMO_IMAGES} images x "
            f"{epochs} epochs in about {DEMO_IMAGES * max(epochs, 1) / rate:.0f} s; DDIM-50 "
            f"(bf16) samples {figures['demo']['sample_ddim50_img_s']:.1f} img/s"
        )

    figures["load_avg_start"] = load_start[0]
    figures["load_avg_end"] = os.getloadavg()[0]
    figures["bench_seconds"] = time.perf_counter() - started
    where = (
        "not recorded (--quick)"
        if args.quick
        else f"appended to {write_result('generators', figures)}"
    )
    print(
        f"{figures['bench_seconds']:.0f} s; load {load_start[0]:.2f} -> {figures['load_avg_end']:.2f}; {where}"
    )


if __name__ == "__main__":
    main()
