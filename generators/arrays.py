"""Conversions between the uint8 arrays the pipeline holds and the tensors a UNet needs.

Models work in [-1, 1], channels first; the pipeline hands over and gets back uint8
images, grey ones as [N, H, W] and colour ones as [N, H, W, C] (the layout PIL and PNG
writers use). Inputs may also be channels-first. Shapes are checked here, once, so that a
wrong array fails with a sentence instead of deep inside a convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from generators.errors import GeneratorInputError


def images_to_tensor(images: np.ndarray, *, channels: int, image_size: int) -> torch.Tensor:
    """uint8 [N,H,W], [N,C,H,W] or [N,H,W,C] → float32 [N,C,H,W] in [-1, 1]."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise GeneratorInputError(
            f"images must be a uint8 numpy array, got {type(images).__name__} "
            f"{getattr(images, 'dtype', '')}".rstrip()
        )
    if images.ndim == 3:
        array = images[:, None]
    elif images.ndim == 4 and images.shape[1] in (1, 3):
        array = images
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        array = np.moveaxis(images, -1, 1)
    else:
        raise GeneratorInputError(f"images must be [N,H,W] or [N,C,H,W], got shape {images.shape}")
    expected = (channels, image_size, image_size)
    if array.shape[0] == 0 or tuple(array.shape[1:]) != expected:
        raise GeneratorInputError(
            f"images must be N>0 images of {channels} channel(s) at {image_size}x{image_size}, "
            f"got shape {images.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(array)).float().div_(127.5).sub_(1.0)


def labels_to_tensor(
    labels: np.ndarray | Sequence[int], *, count: int, num_classes: int
) -> torch.Tensor:
    """Integer class labels in [0, num_classes) → int64 tensor [count]."""
    array = np.asarray(labels)
    if array.shape != (count,) or not np.issubdtype(array.dtype, np.integer):
        raise GeneratorInputError(
            f"labels must be {count} integers, got shape {array.shape} dtype {array.dtype}"
        )
    if count and (array.min() < 0 or array.max() >= num_classes):
        raise GeneratorInputError(
            f"labels must lie in [0, {num_classes}), got {array.min()}..{array.max()}"
        )
    return torch.from_numpy(array.astype(np.int64))


def tensor_to_images(samples: torch.Tensor) -> np.ndarray:
    """float [N,C,H,W] in about [-1, 1] → uint8 [N,H,W] (grey) or [N,H,W,C] (colour)."""
    pixels = ((samples.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def check_record_ids(record_ids: Sequence[str], count: int) -> list[str]:
    """One unique, non-empty string id per training image: the lineage of the model."""
    ids = list(record_ids)
    if len(ids) != count:
        raise GeneratorInputError(
            f"need one record id per image: {len(ids)} ids for {count} images"
        )
    if not all(isinstance(r, str) and r for r in ids):
        raise GeneratorInputError("record ids must be non-empty strings")
    if len(set(ids)) != len(ids):
        raise GeneratorInputError("record ids must be unique (one id per source image)")
    return ids
