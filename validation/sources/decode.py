"""Untrusted image decoding: every failure becomes a `DecodeError` with a stable reason.

Source images arrive from outside (PACS exports, shared drives, public sets) and are
decoded before anything else looks at them, so this module assumes the worst of every
byte: files can be empty, truncated, huge, mislabelled, animated, in odd pixel modes, or
crafted to exhaust memory (decompression bombs). The contract is simple so callers can
quarantine instead of crash (DESIGN.md invariant 4):

- `decode_file` / `decode_bytes` return a `DecodedImage` (8-bit "L" or "RGB", alpha
  composited over black), or raise `DecodeError` whose `reason` is one of `Reason`
  and whose `__cause__` is the library exception, if any. No other exception escapes.
- The format is sniffed from content, never from the file name: a PNG named `.jpg` is a
  PNG. Only the Pillow formats in `DecodeConfig.formats` (PNG and JPEG by default) and
  DICOM are decoded; anything else is `unsupported_format` or `not_an_image`.
- Pixel limits are checked from the header before any pixel is decoded, per call, so
  no global Pillow setting is changed; Pillow's own bomb error (and warning) count too.
- Animated PNGs and multi-frame DICOMs: the FIRST frame is taken (and a note says so)
  unless `multiframe="reject"`, which quarantines them as `multiframe_rejected`.
- High-bit-depth and float grayscale (I;16, I, F) is stretched min-max to 8 bits: the
  absolute units of a 16-bit PNG are unknown, so only the relative contrast is kept.

DICOM specifics (windowing, MONOCHROME1, palettes, compressed syntaxes) live in
`validation.sources.dicom`; this module sniffs and dispatches. What both decoders share
(reasons, config, the decoded frame, limits, 8-bit conversion) is in
`validation.sources.pixels`; the types of this module's signatures are re-exported here
so that callers of `decode_bytes` import them from one place.
"""

from __future__ import annotations

import io
import os
import stat
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from consentgen.errors import DecodeError
from validation.sources.pixels import (
    DecodeConfig,
    DecodedImage,
    Reason,
    check_frames,
    check_pixels,
    short_error,
    to_8bit,
)

__all__ = [
    "DecodeConfig",
    "DecodedImage",
    "Reason",
    "decode_bytes",
    "decode_file",
    "read_limited",
    "short_error",
    "sniff_format",
]


def read_limited(path: str | os.PathLike[str], config: DecodeConfig) -> bytes:
    """The bytes of a regular file, refusing special files, empty files and oversize files.

    FIFOs and devices are refused before opening (reading a FIFO would block the run).
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise DecodeError(Reason.NOT_A_REGULAR_FILE, f"{path} is not a regular file")
        if info.st_size == 0:
            raise DecodeError(Reason.EMPTY_FILE, "file has zero bytes")
        if info.st_size > config.max_file_bytes:
            raise DecodeError(
                Reason.FILE_TOO_LARGE,
                f"{info.st_size} bytes is over the limit of {config.max_file_bytes}",
            )
        with open(path, "rb") as fh:
            # what stat said, plus one byte to notice growth: read(limit) would reserve the
            # whole limit (512 MiB by default) for every small file
            data = fh.read(info.st_size + 1)
    except OSError as exc:
        raise DecodeError(Reason.UNREADABLE, f"cannot read {path}: {exc}") from exc
    if not data:
        raise DecodeError(Reason.EMPTY_FILE, "file has zero bytes")
    if len(data) > info.st_size:  # grew while we read it: a file still being written
        raise DecodeError(Reason.UNREADABLE,
                          f"{path} grew while it was read (still being written?); ingest it again")
    return data


def decode_file(
    path: str | os.PathLike[str],
    config: DecodeConfig | None = None,
    *,
    tags: tuple[str, ...] = (),
    target: tuple[int, int] | None = None,
    grayscale: bool = False,
) -> DecodedImage:
    """Read and decode one untrusted file (see `decode_bytes`)."""
    config = config or DecodeConfig()
    return decode_bytes(
        read_limited(path, config), config, tags=tags, target=target, grayscale=grayscale
    )


def decode_bytes(
    data: bytes,
    config: DecodeConfig | None = None,
    *,
    tags: tuple[str, ...] = (),
    target: tuple[int, int] | None = None,
    grayscale: bool = False,
) -> DecodedImage:
    """Decode untrusted bytes; raises only `DecodeError`.

    `tags` names DICOM tags (keywords or "gggg,eeee") whose values to return.
    `target` is a size hint: a JPEG may be decoded at a reduced DCT scale that stays at
    least twice that size, which is several times faster for large photos; with
    `grayscale` (the caller keeps one channel) it may also decode luma only.
    """
    from validation.sources import dicom  # local: keeps pydicom off the import path of PNG users

    config = config or DecodeConfig()
    if not data:
        raise DecodeError(Reason.EMPTY_FILE, "no bytes")
    try:
        if dicom.looks_like_dicom(data):
            return dicom.decode_dicom(data, config, tags=tags)
        return _decode_pillow(data, config, target, grayscale)
    except DecodeError:
        raise
    except Exception as exc:  # the promise: nothing but DecodeError leaves this function
        raise DecodeError(
            Reason.CORRUPT_IMAGE, f"{type(exc).__name__}: {short_error(exc)}"
        ) from exc


# Magic numbers of formats we recognise but do not decode, to say which in the reason.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
    (b"8BPS", "PSD"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)


def sniff_format(data: bytes) -> str | None:
    """A container name from magic bytes, or None; used only to word reasons."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    return None


def _open_error(exc: Exception, data: bytes, config: DecodeConfig) -> DecodeError:
    """Word a failure of `Image.open` (header parsing) as a reason."""
    if isinstance(exc, Image.DecompressionBombError):
        return DecodeError(Reason.TOO_MANY_PIXELS, short_error(exc))
    if isinstance(exc, UnidentifiedImageError):
        sniffed = sniff_format(data)
        if sniffed and sniffed not in config.formats:
            return DecodeError(
                Reason.UNSUPPORTED_FORMAT,
                f"{sniffed} is not among the accepted formats {', '.join(config.formats)}",
            )
        if sniffed:  # an accepted format whose header does not parse
            return DecodeError(Reason.CORRUPT_IMAGE, f"{sniffed} header does not parse")
        return DecodeError(Reason.NOT_AN_IMAGE, "content is not a recognised image")
    return _load_error(exc)


def _load_error(exc: Exception) -> DecodeError:
    """Word a failure while decoding pixels as a reason."""
    text = str(exc).lower()
    if isinstance(exc, Image.DecompressionBombError):
        return DecodeError(Reason.TOO_MANY_PIXELS, short_error(exc))
    if isinstance(exc, EOFError) or "truncated" in text or "premature end" in text:
        return DecodeError(Reason.TRUNCATED, f"{type(exc).__name__}: {short_error(exc)}")
    if isinstance(exc, MemoryError):
        return DecodeError(Reason.TOO_MANY_PIXELS, "decoding ran out of memory")
    return DecodeError(Reason.CORRUPT_IMAGE, f"{type(exc).__name__}: {short_error(exc)}")


def _decode_pillow(
    data: bytes, config: DecodeConfig, target: tuple[int, int] | None, grayscale: bool
) -> DecodedImage:
    # Warnings are recorded, not printed: a DecompressionBombWarning is an error here,
    # the others (odd EXIF, palette transparency) become notes. The filter is restored
    # on exit, so no process-wide state changes.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im = Image.open(io.BytesIO(data), formats=list(config.formats))
        except Exception as exc:
            raise _open_error(exc, data, config) from exc
        _raise_on_bomb_warning(caught)
        with im:
            width, height = im.size
            check_pixels(width, height, config)
            frames = int(getattr(im, "n_frames", 1) or 1)
            notes = list(check_frames(frames, config))
            original_mode = im.mode
            fmt = im.format or "unknown"
            try:
                if frames > 1:
                    im.seek(0)
                if fmt == "JPEG" and target is not None:
                    side = 2 * max(target)  # square: orientation may swap the axes
                    im.draft("L" if grayscale else None, (side, side))
                im.load()
                oriented = _orient(im, notes)
                image = to_8bit(oriented, notes)
                if image is im:  # detach from the file object closed below
                    image = im.copy()
                image.info = {}  # EXIF, ICC, text: nothing of the file travels with the pixels
            except DecodeError:
                raise
            except Exception as exc:
                raise _load_error(exc) from exc
        _raise_on_bomb_warning(caught)
        notes.extend(_warning_notes(caught))
    return DecodedImage(
        image=image,
        format=fmt,
        mode=original_mode,
        width=width,
        height=height,
        frames=frames,
        notes=tuple(notes),
    )


def _raise_on_bomb_warning(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            raise DecodeError(Reason.TOO_MANY_PIXELS, str(w.message))


def _warning_notes(caught: list[warnings.WarningMessage], keep: int = 3) -> list[str]:
    texts = sorted({f"warning: {str(w.message)[:120]}" for w in caught})
    return texts[:keep]


def _orient(im: Image.Image, notes: list[str]) -> Image.Image:
    """Apply EXIF orientation; unreadable EXIF leaves the image as stored (noted).

    The EXIF itself is discarded later with every other metadata block, so a broken
    block is no reason to refuse otherwise good pixels.
    """
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception as exc:
        notes.append(f"EXIF unreadable ({type(exc).__name__}); orientation not applied")
        return im
    if orientation in (None, 1):
        return im
    try:
        turned = ImageOps.exif_transpose(im)
    except Exception as exc:
        notes.append(f"EXIF orientation {orientation} not applied ({type(exc).__name__})")
        return im
    notes.append(f"EXIF orientation {orientation} applied")
    return turned
