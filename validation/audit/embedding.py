"""Dense embeddings for the cosine metric: a local TorchScript model, or the built-in one.

A trained copy-detection model such as SSCD (Pizzi et al. 2022) is the strongest
choice; it ships as a TorchScript file and is only ever read from a local path.

Without one, the built-in `DctPcaEmbedder` needs no weights and no download:
- the image (or a region of it) is area-resampled to 32x32, and its 8x8 lowest 2-D DCT
  coefficients (DC dropped) are divided by the pixels' standard deviation: they keep
  the layout of the anatomy, ignore gain and offset, and discard the pixel noise and
  JPEG error that the pixel metrics are sensitive to;
- the coefficients are centred and PCA-whitened on the SOURCE set (with shrinkage),
  the classic trick of copy detection (Jegou & Chum 2012): raw low-frequency
  coefficients of any two brain slices have cosine ~0.96, because every slice shares
  the same oval outline; whitening removes what all sources share, so the cosine
  measures what makes this slice this slice (nearest different slice ~0.75 median);
- each source is also described by crops of itself (region descriptors), so that a
  candidate that is a zoomed-in part of a source meets a descriptor of that part;
- candidates are also matched mirrored (`embedding_flip_invariant`), because a
  mirrored copy is invisible to pHash and pixel distances but is still a copy.
Resampling and the DCT are both linear, so a region's coefficients are two small
matrix products on the full-resolution pixels: 37 descriptors per source stay cheap.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from consentgen.errors import AuditError, ConfigError

Box = tuple[float, float, float, float]
"""(top, left, height, width) of a region, as fractions of the image's height / width."""

_CHUNK = 2048
"""Images embedded at a time: bounds the float copies whatever the batch size."""


class Embedder(Protocol):
    """What the audit needs from an embedding: fit once on sources, then embed views."""

    name: str

    def fit(self, gray_sources: np.ndarray) -> None:
        """Learn whatever the embedding learns from the source set (maybe nothing)."""

    def embed_views(self, gray: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """float32 [1 + len(boxes), N, d]: whole images, then each region; unit rows
        (zero rows for blank views)."""


def embed(embedder: Embedder, gray: np.ndarray) -> np.ndarray:
    """float32 [N, d]: the whole-image embedding alone."""
    return embedder.embed_views(gray, [])[0]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def area_matrix(n_in: int, start: int, length: int, n_out: int) -> np.ndarray:
    """float64 [n_out, n_in]: area resampling of pixels [start, start+length) to n_out.

    Output pixel j averages the input interval it covers, fractional pixels weighted
    by overlap (what OpenCV calls INTER_AREA); for 64 -> 32 it is the 2x2 mean.
    """
    out = np.zeros((n_out, n_in))
    step = length / n_out
    for j in range(n_out):
        lo, hi = start + j * step, start + (j + 1) * step
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            out[j, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / step
    return out


def crop_boxes(scales: tuple[float, ...], grid: int) -> list[Box]:
    """Every region descriptor's box, as fractions of the image: each scale on a
    grid x grid lattice of offsets."""
    boxes = []
    for scale in scales:
        for top in np.linspace(0.0, 1.0 - scale, grid):
            for left in np.linspace(0.0, 1.0 - scale, grid):
                boxes.append((float(top), float(left), float(scale), float(scale)))
    return boxes


def pixel_box(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """A fractional box on a height x width pixel grid: (top, left, rows, cols)."""
    top, left, fh, fw = box
    rows, cols = max(1, round(fh * height)), max(1, round(fw * width))
    return (min(round(top * height), height - rows), min(round(left * width), width - cols),
            rows, cols)


class DctPcaEmbedder:
    """Low-frequency DCT of the area-resampled view over its std, PCA-whitened on sources."""

    def __init__(
        self, grid: int = 32, coeffs: int = 8, components: int = 32, shrink: float = 0.01
    ) -> None:
        self.grid = grid
        self.coeffs = coeffs
        self.components = components
        self.shrink = shrink
        self.name = f"dct{coeffs}x{coeffs}-pca{components}"
        # rows of the orthonormal DCT-II matrix: coefficient u of a length-`grid` signal
        self._dct = scipy.fft.dct(np.eye(grid), norm="ortho", axis=0)[:coeffs]
        self._mean: np.ndarray | None = None
        self._proj: np.ndarray | None = None

    def features(self, gray: np.ndarray, boxes: list[Box] | None = None) -> np.ndarray:
        """float64 [1 + len(boxes), N, coeffs**2 - 1]: DCT blocks before whitening.

        The image is first area-pooled to grid x grid (P = A_h X A_w^T); view v's block
        is then R_v P C_v^T, with R_v, C_v = DCT rows @ area resampling of the view's
        rows / columns, divided by the view's pixel std (from indicator products on P).
        All of it is a few large matrix products per chunk of images.
        """
        n, h, w = gray.shape
        g, k = self.grid, self.coeffs
        views = [pixel_box(b, g, g) for b in [(0.0, 0.0, 1.0, 1.0), *(boxes or [])]]
        nv = len(views)
        pool_h = torch.from_numpy(area_matrix(h, 0, h, g))
        pool_w = torch.from_numpy(area_matrix(w, 0, w, g))
        row_ops = torch.stack([torch.from_numpy(self._dct @ area_matrix(g, t, ch, g))
                               for t, _, ch, _ in views]).float()  # [V, k, g]
        col_ops = torch.stack([torch.from_numpy(self._dct @ area_matrix(g, left, cw, g))
                               for _, left, _, cw in views]).float()  # [V, k, g]
        row_mask = torch.zeros(nv, g, dtype=torch.float64)
        col_mask = torch.zeros(nv, g, dtype=torch.float64)
        for v, (t, left, ch, cw) in enumerate(views):
            row_mask[v, t : t + ch] = 1.0
            col_mask[v, left : left + cw] = 1.0
        area = (row_mask.sum(1) * col_mask.sum(1)).view(-1, 1)
        out = np.empty((nv, n, k * k - 1))
        for start in range(0, n, _CHUNK):
            x = torch.from_numpy(np.asarray(gray[start : start + _CHUNK], dtype=np.float64))
            m = len(x)
            pooled = pool_h @ x @ pool_w.T  # [m, g, g], float64
            flat = pooled.reshape(m * g, g)
            # view statistics in float64, where E[x^2] - E[x]^2 would otherwise cancel
            # away a low-contrast region's variance
            s1 = torch.einsum("mhv,vh->vm", (flat @ col_mask.T).view(m, g, nv), row_mask)
            s2 = torch.einsum("mhv,vh->vm", ((flat * flat) @ col_mask.T).view(m, g, nv),
                              row_mask)
            mean = s1 / area
            std = (s2 / area - mean * mean).clamp(min=0).sqrt()  # [V, m]
            # the coefficients need 1e-6, not 1e-15: float32 from here
            y = (flat.float() @ col_ops.reshape(-1, g).T).view(m, g, nv, k)
            block = torch.einsum("vkh,mhvj->vmkj", row_ops, y).double()  # [V, m, k, k]
            scale = torch.where(std > 1e-3, 1.0 / std, 0.0)
            block = block.reshape(nv, m, k * k)[:, :, 1:] * scale[:, :, None]
            out[:, start : start + m] = block.numpy()
        return out

    def fit(self, gray_sources: np.ndarray) -> None:
        feats = self.features(gray_sources)[0]
        n, d = feats.shape
        k = min(self.components, d, n - 1)
        if k < 2:  # too few sources to learn what they share: plain coefficients
            self._mean = np.zeros(d)
            self._proj = np.eye(d)
            return
        self._mean = feats.mean(axis=0)
        cov = np.cov(feats - self._mean, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][:k]
        vals = np.clip(vals[order], 0.0, None)
        self._proj = vecs[:, order] / np.sqrt(vals + self.shrink * max(vals[0], 1e-12))

    def embed_views(self, gray: np.ndarray, boxes: list[Box]) -> np.ndarray:
        if self._proj is None or self._mean is None:
            raise AuditError("DctPcaEmbedder used before fit")
        return _unit_rows((self.features(gray, boxes) - self._mean) @ self._proj)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchScriptEmbedder:
    """A local TorchScript model (e.g. SSCD): grey replicated to RGB, ImageNet-normalised.

    That input convention is SSCD's and almost every torchvision-style model's. Regions
    are cropped and resized (bilinear, antialiased) to the model's input size.
    """

    def __init__(self, path: Path, input_size: int | None = None, batch: int = 64) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"embedding model {path} does not exist (it is never downloaded)")
        try:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, but SSCD
                warnings.simplefilter("ignore", DeprecationWarning)  # ships only as one
                self._model = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"embedding model {path} is not a TorchScript file: {exc}") from exc
        self.input_size = input_size
        self.batch = batch
        self.name = f"torchscript:{path.name}"

    def fit(self, gray_sources: np.ndarray) -> None:
        """A trained model learns nothing more from the sources."""

    def _run(self, x: torch.Tensor) -> np.ndarray:
        """x: float [n, 1, h, w] grey levels -> float64 [n, d]."""
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        emb = self._model(((x / 255.0).expand(-1, 3, -1, -1) - mean) / std)
        if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or len(emb) != len(x):
            raise AuditError(f"{self.name} must return one vector per image")
        return emb.double().numpy()

    def embed_views(self, gray: np.ndarray, boxes: list[Box]) -> np.ndarray:
        n, h, w = gray.shape
        views: list[list[np.ndarray]] = [[] for _ in range(1 + len(boxes))]
        with torch.inference_mode():
            for start in range(0, n, self.batch):
                x = torch.from_numpy(gray[start : start + self.batch]).to(torch.float32)[:, None]
                views[0].append(self._run(x))
                for v, (top, left, ch, cw) in enumerate(
                    (pixel_box(b, h, w) for b in boxes), start=1
                ):
                    region = F.interpolate(x[:, :, top : top + ch, left : left + cw],
                                           size=(h, w), mode="bilinear", antialias=True,
                                           align_corners=False)
                    views[v].append(self._run(region))
        if n == 0:
            return np.zeros((1 + len(boxes), 0, 1), np.float32)
        return _unit_rows(np.stack([np.concatenate(v) for v in views]))


def make_embedder(model_path: Path | None, input_size: int | None) -> Embedder:
    """The configured model when a path is given, else the built-in DCT-PCA embedding."""
    if model_path is not None:
        return TorchScriptEmbedder(model_path, input_size)
    return DctPcaEmbedder()
