"""The release watermark (validation/release/watermark.py): does it read back, and at what cost.

    .venv/bin/python bench/watermark.py [--images 100] [--quick]   # from the repository root

Stand-ins for published images: Br35H slices (the demo's sources; published DDPM
samples look like them) resized to each side as the pipeline's `load_pixels` does, as
"L" and as "RGB" (the files decoded as RGB; 1 in 5 of the RGB stand-ins is one of the
tinted files, the rest are grey in RGB). Each image carries its own tag (v0001, v0002..).

Figures (one JSON line appended to bench/results/watermark.jsonl):
- `readback[mode][side][attack]`: mean and min bit accuracy and the share of tags read
  back valid (`read_tag`: the release the image was given; `valid_unrepaired`: before
  its one-bit repair) for: none, png (our
  `encode_png` and back), jpeg75 (Pillow, quality 75, 4:2:0 for RGB), resize90 (bicubic to
  round(0.9 * side), read back at the nominal side); plus PSNR (mean, min) of the marked
  image, and embed / read ms per image with their ratio to a PNG encode + decode of the
  same image (the baseline, timed in the same loop).
- `min_size_measured`: the smallest side from which every larger side meets the
  criterion in `MIN_WATERMARK_SIZE`'s docstring; compared with the module's constant.
- `scale_sweep` (64 px, L and RGB): the same valid shares and PSNR per scale.
- `variants` (L, 64 and 128 px; RGB channel U at 64 and 128): the library as shipped
  (dwtDct = EmbedMaxDct; dwtDctSvd with its floor quantiser and raster order) against the
  nearest quantiser and the scattered order, and the U channel against Y for RGB;
  `library_encode_y_psnr_256`: PSNR of imwatermark's own `WatermarkEncoder.encode`
  (scales [40, 0, 0], 256 px) - why the module wraps the codec itself.
- `false_positives`: unmarked slices (and uniform-noise and flat images) read as tags:
  how many decode valid, and the 99th percentile of their confidence.
- `audit[side]` (and `audit_scale_sweep_64`, other scales at 64 px): the memorisation audit (AuditIndex at the default AuditConfig, exact
  route, the same calls as pipelines/steps/audit.py) of candidates before and after
  marking: per metric max and mean |delta|, flags that flip either way, the smallest
  margin to a threshold among unflagged candidates, p99 |delta|. Sources: slices of 3 in 5 simulated
  subjects; candidates: slices of the other subjects and light copies of sources of
  random strength (noise, gain, JPEG, shift, crop, mirror), so that some sit near every
  threshold. At 32 px the tag is off in production; it is measured there all the same.
- `import_s`: cold `import imwatermark` (pulls torch) and `import cv2`, in subprocesses.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result
from pipelines.demo.sources import demo_slices
from validation.audit import AuditConfig, AuditIndex
from validation.release import watermark as wm
from validation.sources.normalize import encode_png

SIDES = (32, 48, 64, 96, 128, 256)
ATTACKS = ("none", "png", "jpeg75", "resize90")
SEED = 14


def fit(im: Image.Image, side: int) -> Image.Image:
    """As pipelines.steps.images.load_pixels: BOX when shrinking, BICUBIC when enlarging."""
    resample = Image.Resampling.BOX if im.width > side else Image.Resampling.BICUBIC
    return im.resize((side, side), resample)


def tinted(paths: list[Path]) -> list[Path]:
    """The Br35H files whose colour channels really differ (128 of 3,000)."""
    out = []
    for path in paths:
        with Image.open(path) as im:
            if im.mode != "RGB":
                continue
            im.draft("RGB", (64, 64))
            a = np.asarray(im.resize((32, 32)), dtype=np.int16)
        if np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 2] - a[..., 1]).mean() > 2:
            out.append(path)
    return out


def stand_ins(paths: list[Path], colour: list[Path], n: int) -> dict[str, list[Image.Image]]:
    """Decoded originals: n "L" slices and n "RGB" ones (n // 5 of them tinted)."""
    rng = np.random.default_rng(SEED)
    grey = [paths[i] for i in rng.choice(len(paths), n, replace=False)]
    rgb = grey[: n - n // 5] + [colour[i] for i in rng.choice(len(colour), n // 5, replace=False)]
    load = lambda p, mode: Image.open(p).convert(mode)  # noqa: E731
    return {"L": [load(p, "L") for p in grey], "RGB": [load(p, "RGB") for p in rgb]}


def attack(im: Image.Image, kind: str) -> Image.Image:
    if kind == "none":
        return im
    if kind == "resize90":
        return im.resize((round(0.9 * im.width),) * 2, Image.Resampling.BICUBIC)
    if kind == "png":
        return Image.open(io.BytesIO(encode_png(np.asarray(im)))).convert(im.mode)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue())).convert(im.mode)


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else 99.0


def readback(images: list[Image.Image], side: int, params: wm.WatermarkParams,
             attacks: tuple[str, ...] = ATTACKS, timing: bool = False) -> dict[str, Any]:
    """Mark every image at `side`, attack it, read it back: the figures of one cell."""
    acc: dict[str, list[float]] = {a: [] for a in attacks}
    valid, raw = dict.fromkeys(attacks, 0), dict.fromkeys(attacks, 0)
    psnrs, t_embed, t_read, t_png = [], 0.0, 0.0, 0.0
    for i, original in enumerate(images):
        im = fit(original, side)
        version = f"v{i + 1:04d}"
        bits = wm.payload_bits(wm.release_payload(version))
        t0 = time.perf_counter()
        marked = wm.embed_bits(im, bits, params=params)
        t_embed += time.perf_counter() - t0
        t0 = time.perf_counter()
        Image.open(io.BytesIO(encode_png(np.asarray(marked)))).load()
        t_png += time.perf_counter() - t0
        psnrs.append(psnr(im, marked))
        for kind in attacks:
            t0 = time.perf_counter()
            got = wm.read_tag(attack(marked, kind), size=side, params=params)
            t_read += time.perf_counter() - t0 if kind == "none" else 0.0
            acc[kind].append(wm.bit_accuracy(got.bits, bits))
            valid[kind] += got.release == version
            raw[kind] += wm.parse_payload(wm.bits_payload(got.bits)) == version
    n = len(images)
    cell: dict[str, Any] = {
        a: {"acc_mean": round(float(np.mean(acc[a])), 4), "acc_min": round(min(acc[a]), 4),
            "valid": round(valid[a] / n, 4), "valid_unrepaired": round(raw[a] / n, 4)}
        for a in attacks
    }
    cell["psnr_mean"], cell["psnr_min"] = round(float(np.mean(psnrs)), 2), round(min(psnrs), 2)
    if timing:
        cell |= {"embed_ms": round(1e3 * t_embed / n, 2), "read_ms": round(1e3 * t_read / n, 2),
                 "png_ms": round(1e3 * t_png / n, 2),
                 "embed_vs_png": round(t_embed / t_png, 1), "read_vs_png": round(t_read / t_png, 1)}
    return cell


def reliable(cells: dict[str, dict[str, Any]]) -> bool:
    """MIN_WATERMARK_SIZE's criterion on one side, over the modes measured there."""
    return all(c[a]["valid"] == 1.0 for c in cells.values() for a in ("none", "png", "jpeg75"))\
        and all(c["resize90"]["acc_mean"] >= 0.99 for c in cells.values())


def false_positives(images: list[Image.Image], sides: tuple[int, ...]) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    out: dict[str, Any] = {}
    for side in sides:
        extra = [Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L")
                 for _ in range(50)] + [Image.new("L", (side, side), v) for v in (0, 128, 255)]
        conf, found = [], 0
        for im in [fit(x, side) for x in images] + extra:
            reading = wm.read_tag(im)
            conf.append(reading.confidence)
            found += reading.found
        out[str(side)] = {"images": len(conf), "valid_tags": found,
                          "confidence_p99": round(float(np.percentile(conf, 99)), 3),
                          "confidence_max": round(max(conf), 3)}
    return out


def light_copy(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A source put through one transform of random strength (some near each threshold)."""
    kind, a = rng.integers(6), np.asarray(im, dtype=np.float64)
    side = im.width
    if kind == 0:
        a = a + rng.normal(0, rng.uniform(2, 40), a.shape)
    elif kind == 1:
        a = a * rng.uniform(0.7, 1.4)
    elif kind == 2:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(10, 90)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")
    elif kind == 3:
        a = np.roll(a, tuple(rng.integers(1, max(2, side // 12), 2)), axis=(0, 1))
    elif kind == 4:
        m = int(side * rng.uniform(0.03, 0.2))
        return im.crop((m, m, side - m, side - m)).resize((side, side), Image.Resampling.BICUBIC)
    else:
        a = a[:, ::-1] + rng.normal(0, rng.uniform(0, 20), a.shape)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def audit_deltas(side: int, n_sources: int, n_each: int, mode: str = "L",
                 params: wm.WatermarkParams = wm.DEFAULT_PARAMS) -> dict[str, Any]:
    """The default audit of the same candidates unmarked and marked (exact search)."""
    rng = np.random.default_rng(SEED + side)
    slices = demo_slices()
    subjects = sorted({s.subject_id for s in slices})
    held = set(rng.choice(subjects, len(subjects) * 2 // 5, replace=False))
    src_paths = [s.path for s in slices if s.subject_id not in held]
    other = [s.path for s in slices if s.subject_id in held]
    src_paths = [src_paths[i] for i in rng.choice(len(src_paths), n_sources, replace=False)]
    sources = [fit(Image.open(p).convert("L"), side) for p in src_paths]
    cands = [fit(Image.open(other[i]).convert("L"), side)
             for i in rng.choice(len(other), n_each, replace=False)]
    cands += [light_copy(sources[i], rng) for i in rng.choice(n_sources, n_each, replace=False)]
    if mode == "RGB":
        cands = [c.convert("RGB") for c in cands]
    marked = [wm.embed_bits(c, wm.payload_bits(wm.release_payload("v0003")), params=params)
              for c in cands]
    stack = lambda ims: np.stack([np.asarray(x) for x in ims])  # noqa: E731
    index = AuditIndex.build(stack(sources), [str(p) for p in src_paths], AuditConfig())
    before = index.audit(stack(cands)).table.to_pydict()
    after = index.audit(stack(marked)).table.to_pydict()
    limits = AuditConfig().thresholds()
    out: dict[str, Any] = {"sources": n_sources, "candidates": len(cands), "mode": mode,
                           "flagged_before": int(sum(before["flagged"])),
                           "psnr_mean": round(float(np.mean([psnr(a, b) for a, b in
                                                             zip(cands, marked, strict=True)])), 2)}
    clean = ~np.array(before["flagged"])
    for metric, limit in limits.items():
        b, a = np.array(before[metric], np.float64), np.array(after[metric], np.float64)
        on_b = b >= limit if metric == "embedding_cosine" else b <= limit
        on_a = a >= limit if metric == "embedding_cosine" else a <= limit
        out[metric] = {"max_abs_delta": round(float(np.max(np.abs(a - b))), 4),
                       "mean_abs_delta": round(float(np.mean(np.abs(a - b))), 4),
                       "p99_abs_delta": round(float(np.percentile(np.abs(a - b), 99)), 4),
                       "mean_delta": round(float(np.mean(a - b)), 4),
                       "crossed_to_flag": int(np.sum(~on_b & on_a)),
                       "crossed_to_clean": int(np.sum(on_b & ~on_a)),
                       "min_margin_clean": round(float(np.min(np.abs(b[clean] - limit))), 4)}
    flags_b, flags_a = np.array(before["flagged"]), np.array(after["flagged"])
    out["clean_became_flagged"] = int(np.sum(~flags_b & flags_a))
    out["flagged_became_clean"] = int(np.sum(flags_b & ~flags_a))
    return out


def import_costs() -> dict[str, float]:
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    out = {}
    for name in ("cv2", "imwatermark"):
        run = subprocess.run([sys.executable, "-c", code.format(name)], capture_output=True,
                             text=True, check=True)
        out[name] = round(float(run.stdout.strip().splitlines()[-1]), 3)
    return out


def library_encode_psnr(images: list[Image.Image]) -> float:
    from imwatermark import WatermarkEncoder

    enc = WatermarkEncoder()
    enc.set_watermark("bits", [int(b) for b in wm.payload_bits(wm.release_payload("v0003"))])
    values = []
    for original in images:
        im = fit(original, 256).convert("RGB")
        bgr = np.ascontiguousarray(np.asarray(im)[..., ::-1])
        out = enc.encode(bgr, "dwtDctSvd", scales=[40, 0, 0], block=2)
        values.append(psnr(im, Image.fromarray(np.ascontiguousarray(out[..., ::-1]))))
    return round(float(np.mean(values)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="stand-ins per side and mode")
    parser.add_argument("--quick", action="store_true", help="20 images, smaller audit")
    args = parser.parse_args()
    n = 20 if args.quick else args.images
    paths = sorted(s.path for s in demo_slices())
    images = stand_ins(paths, tinted(paths), n)
    p = wm.DEFAULT_PARAMS
    figures: dict[str, Any] = {"images_per_cell": n, "params": p.model_dump(),
                               "min_size_module": wm.MIN_WATERMARK_SIZE, "sides": list(SIDES)}
    figures["readback"] = {m: {str(s): readback(images[m], s, p, timing=True) for s in SIDES}
                           for m in ("L", "RGB")}
    ok = {s: reliable({m: figures["readback"][m][str(s)] for m in ("L", "RGB")}) for s in SIDES}
    figures["min_size_measured"] = next(
        (s for s in SIDES if all(ok[t] for t in SIDES if t >= s)), None)
    figures["scale_sweep"] = {
        m: {f"{scale:g}": readback(images[m], 64, p.model_copy(update={"scale": scale}))
            for scale in (24.0, 32.0, 40.0, 48.0, 64.0)} for m in ("L", "RGB")}
    variants = {"dwtDct_as_shipped": p.model_copy(update={"method": "dwtDct", "scatter": False}),
                "dwtDctSvd_as_shipped": p.model_copy(update={"nearest": False, "scatter": False}),
                "nearest_raster": p.model_copy(update={"scatter": False}), "default": p}
    figures["variants"] = {f"L_{name}_{s}": readback(images["L"], s, v)
                           for name, v in variants.items() for s in (64, 128)}
    figures["variants"] |= {f"RGB_U_{s}": readback(images["RGB"], s,
                                                   p.model_copy(update={"channel": "U"}))
                            for s in (64, 128)}
    figures["library_encode_y_psnr_256"] = library_encode_psnr(images["L"][:10])
    fp_images = [Image.open(x).convert("L") for x in paths[:: 6 if args.quick else 3]]
    figures["false_positives"] = false_positives(fp_images, (64, 128, 256))
    n_src, n_each = (200, 50) if args.quick else (600, 150)
    figures["audit"] = {str(s): audit_deltas(s, n_src, n_each) for s in (32, 64, 128, 256)}
    figures["audit"]["64_RGB"] = audit_deltas(64, n_src, n_each, "RGB")
    figures["audit_scale_sweep_64"] = {
        f"{scale:g}": audit_deltas(64, n_src, n_each, params=p.model_copy(update={"scale": scale}))
        for scale in (24.0, 32.0, 48.0)}
    figures["import_s"] = import_costs()
    path = write_result("watermark", figures)
    report(figures)
    print(f"appended to {path}")


def report(f: dict[str, Any]) -> None:
    print(f"{'mode':>4} {'side':>4} {'psnr':>5} " + " ".join(f"{a:>17}" for a in ATTACKS)
          + "  embed/read ms")
    for mode, by_side in f["readback"].items():
        for side, c in by_side.items():
            cells = " ".join(f"{c[a]['acc_mean']:.3f}/{c[a]['acc_min']:.2f}/{c[a]['valid']:.2f}"
                             .rjust(17) for a in ATTACKS)
            print(f"{mode:>4} {side:>4} {c['psnr_mean']:5.1f} {cells}  "
                  f"{c['embed_ms']:.1f}/{c['read_ms']:.1f}")
    print("cells: bit accuracy mean / min / share of tags valid")
    for mode, sweep in f["scale_sweep"].items():
        for scale, c in sweep.items():
            print(f"scale {scale:>3} {mode:>3} 64 px: psnr {c['psnr_mean']:.1f}, valid "
                  + ", ".join(f"{a} {c[a]['valid']:.2f}" for a in ATTACKS)
                  + f", resize acc {c['resize90']['acc_mean']:.3f}")
    for name, c in f["variants"].items():
        print(f"{name:>28}: psnr {c['psnr_mean']:.1f}, valid "
              + ", ".join(f"{a} {c[a]['valid']:.2f}" for a in ATTACKS))
    print(f"imwatermark's own encode, Y, 256 px: psnr {f['library_encode_y_psnr_256']}")
    for side, fp in f["false_positives"].items():
        print(f"unmarked {side} px: {fp['valid_tags']} valid of {fp['images']}, "
              f"confidence p99 {fp['confidence_p99']} max {fp['confidence_max']}")
    for side, a in list(f["audit"].items()) + [
            (f"64 scale {k}", v) for k, v in f["audit_scale_sweep_64"].items()]:
        deltas = ", ".join(f"{m} {a[m]['max_abs_delta']} (margin {a[m]['min_margin_clean']}, "
                           f"+{a[m]['crossed_to_flag']}/-{a[m]['crossed_to_clean']})"
                           for m in ("phash_distance", "pixel_l2", "patch_l2", "embedding_cosine"))
        print(f"audit {side}: {a['flagged_before']}/{a['candidates']} flagged; max |delta| "
              f"{deltas}; clean->flagged {a['clean_became_flagged']}, "
              f"flagged->clean {a['flagged_became_clean']}")
    print(f"imports: {f['import_s']} s")
    print(f"measured MIN_WATERMARK_SIZE {f['min_size_measured']} (criterion: every tag valid "
          f"unattacked, after PNG and JPEG q75, resize bit accuracy >= 0.99, L and RGB, at it "
          f"and every larger side); the module says {f['min_size_module']}")


if __name__ == "__main__":
    main()
