"""Utility figure for the data card: train on synthetic, test on real (TSTR).

A small CNN is trained on the synthetic images and tested on held-out REAL images; the
same network, trained the same way on the real training images (TRTR), is the bar to
compare with. TSTR close to TRTR means the synthetic set carries what a downstream
model needs; far below means it looks right but teaches little.

Everything runs at 32x32 grey on CPU in seconds: each image is area-resized and
standardised (so an intensity shift between synthetic and real cannot decide the
score), training uses seeded shuffles, random mirroring and a fixed schedule.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from consentgen.errors import AuditError

from .arrays import check_images, luminance

IMAGE_SIDE = 32


class TstrFigures(BaseModel):
    """Accuracies on held-out real images (`.model_dump()` for a dict)."""

    model_config = ConfigDict(frozen=True)

    tstr_accuracy: float
    """Trained on synthetic, tested on real."""
    trtr_accuracy: float
    """Trained on real training images, tested on the same real test images."""
    tstr_over_trtr: float
    chance_accuracy: float
    """Share of the most frequent class among the test labels."""
    n_synthetic: int
    n_train_real: int
    n_test_real: int
    n_classes: int
    epochs: int
    seed: int


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (16-32-64 channels) and a linear head: ~25k parameters."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _prepare(images: np.ndarray, name: str) -> torch.Tensor:
    check_images(images, name)
    x = torch.from_numpy(luminance(images)).to(torch.float32)[:, None]
    x = F.adaptive_avg_pool2d(x, IMAGE_SIDE)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x / x.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)


def _fit_and_score(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
    n_classes: int, epochs: int, seed: int,
) -> float:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(x_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            xb = x_train[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x_test[s : s + 256]).argmax(1) for s in range(0, len(x_test), 256)])
    return float((pred == y_test).float().mean())


def tstr_figures(
    synthetic: np.ndarray, synthetic_labels: np.ndarray, train_real: np.ndarray,
    train_labels: np.ndarray, test_real: np.ndarray, test_labels: np.ndarray,
    seed: int = 0, epochs: int = 15,
) -> TstrFigures:
    """TSTR and TRTR accuracy of one small CNN recipe on the same real test images."""
    labels = [np.asarray(v).ravel() for v in (synthetic_labels, train_labels, test_labels)]
    for lab, imgs, name in zip(labels, (synthetic, train_real, test_real),
                               ("synthetic", "train_real", "test_real"), strict=True):
        if len(lab) != len(imgs):
            raise AuditError(f"{name}: {len(lab)} labels for {len(imgs)} images")
        if len(lab) == 0:
            raise AuditError(f"{name}: no images")
    classes, coded = np.unique(np.concatenate(labels), return_inverse=True)
    if len(classes) < 2:
        raise AuditError("TSTR needs at least two classes")
    y_syn, y_tr, y_te = (torch.from_numpy(c.astype(np.int64))
                         for c in np.split(coded, np.cumsum([len(labels[0]), len(labels[1])])))
    x_syn = _prepare(synthetic, "synthetic")
    x_tr = _prepare(train_real, "train_real")
    x_te = _prepare(test_real, "test_real")
    k = len(classes)
    # A 25k-parameter CNN on 32x32 gains nothing from threads, and on shared cores
    # OpenMP barriers made it 10x slower (measured 1,680 vs 120 img/s): train on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tstr = _fit_and_score(x_syn, y_syn, x_te, y_te, k, epochs, seed)
        trtr = _fit_and_score(x_tr, y_tr, x_te, y_te, k, epochs, seed)
    finally:
        torch.set_num_threads(threads)
    return TstrFigures(
        tstr_accuracy=tstr, trtr_accuracy=trtr,
        tstr_over_trtr=tstr / trtr if trtr > 0 else float("nan"),
        chance_accuracy=float(np.bincount(y_te.numpy(), minlength=k).max() / len(y_te)),
        n_synthetic=len(synthetic), n_train_real=len(train_real), n_test_real=len(test_real),
        n_classes=k, epochs=epochs, seed=seed,
    )
