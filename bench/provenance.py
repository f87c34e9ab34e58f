"""What our provenance costs a published image: bytes added and time, per image size.

    .venv/bin/python bench/provenance.py        # from the repository root

For each side (16, 32, 64, 128, 256 px, grey; 64 px RGB) over real Br35H slices resized to
it, the same images are written three ways in one run:
- `plain`: Pillow's PNG encode, what publish did before (the baseline);
- `stamped`: `ReleaseStamp.write` — XMP packet + C2PA manifest signed with a development
  signer (no thumbnail) + the metadata gate reading it back and verifying the chain;
  with the watermark where the size carries it;
- `sign_only`: the `Stamper` alone (encode + XMP + sign), without the gate.

Figures: `added_bytes_per_image` (stamped − plain, mean), `stamped_vs_plain_size`,
`ratio_stamped_vs_plain_time`, `ratio_sign_only_vs_plain_time`, ms per image of each.
`bench/ingest.py` reports the same per-image size next to its ingest figures.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result
from pipelines.demo.sources import demo_slices
from pipelines.settings import quick_preset
from pipelines.steps.provenance import ReleaseStamp
from validation.release.provenance import Stamper

SIZES = (16, 32, 64, 128, 256)
PER_SIZE = 60


def _images(paths: list[Path], size: int, mode: str) -> list[Image.Image]:
    out = []
    for path in paths:
        with Image.open(path) as im:
            out.append(im.convert(mode).resize((size, size), Image.Resampling.LANCZOS))
    return out


def measure(home: Path, paths: list[Path], size: int, mode: str) -> dict[str, Any]:
    """Plain vs stamped bytes and time for `paths` at `size` px in `mode`."""
    images = _images(paths, size, mode)
    folder = home / f"{mode}{size}"
    folder.mkdir()
    sources = []
    t0 = time.perf_counter()
    for i, im in enumerate(images):
        buf = io.BytesIO()
        im.save(buf, "PNG")
        sources.append(folder / f"{i}.png")
        sources[-1].write_bytes(buf.getvalue())
    plain_s = time.perf_counter() - t0
    config = quick_preset().model_copy(update={"generator": quick_preset().generator.model_copy(
        update={"image_size": size, "channels": 3 if mode == "RGB" else 1})})
    with ReleaseStamp(home, config, "v0001", "ab" * 32) as stamp:
        t0 = time.perf_counter()
        for source in sources:
            stamp.write(source, source.with_suffix(".stamped.png"))
        stamped_s = time.perf_counter() - t0
        with Stamper(stamp.credentials, stamp.provenance) as stamper:
            t0 = time.perf_counter()
            for im in images:
                stamper.stamp(im)
            sign_s = time.perf_counter() - t0
        watermark = stamp.watermark
    plain_b = sum(s.stat().st_size for s in sources) / len(sources)
    stamped_b = sum(s.with_suffix(".stamped.png").stat().st_size for s in sources) / len(sources)
    n = len(images)
    return {
        "size": size, "mode": mode, "images": n, "watermark": watermark,
        "plain_bytes_per_image": round(plain_b), "stamped_bytes_per_image": round(stamped_b),
        "added_bytes_per_image": round(stamped_b - plain_b),
        "stamped_vs_plain_size": round(stamped_b / plain_b, 2),
        "plain_ms_per_image": round(1000 * plain_s / n, 3),
        "stamped_ms_per_image": round(1000 * stamped_s / n, 3),
        "sign_only_ms_per_image": round(1000 * sign_s / n, 3),
        "ratio_stamped_vs_plain_time": round(stamped_s / plain_s, 2),
        "ratio_sign_only_vs_plain_time": round(sign_s / plain_s, 2),
    }


def manifest_figures(per_size: int = PER_SIZE) -> list[dict[str, Any]]:
    paths = [s.path for s in demo_slices()][:per_size]
    with tempfile.TemporaryDirectory(prefix="bench-provenance-") as tmp:
        home = Path(tmp)
        (home / "warm").mkdir()
        measure(home / "warm", paths[:4], 64, "L")  # the signer, the SDK, imwatermark (torch) loaded
        rows = [measure(home, paths, size, "L") for size in SIZES]
        rows.append(measure(home, paths, 64, "RGB"))
    return rows


def main() -> None:
    rows = manifest_figures()
    path = write_result("provenance", {"per_size": rows})
    keys = ("size", "mode", "watermark", "plain_bytes_per_image", "added_bytes_per_image",
            "stamped_vs_plain_size", "plain_ms_per_image", "stamped_ms_per_image",
            "ratio_stamped_vs_plain_time")
    print(" ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(" ".join(f"{row[k]!s:>14}" for k in keys))
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
