"""An invisible release tag in published images (issue 14): which release made this image.

Applied after the memorisation audit and before publishing, to images large enough to
carry it (`can_carry`). bench/watermark.py measured every choice below on Br35H slices
(figures: bench/results/watermark.jsonl, the line of commit ec9f839).

- **Method**: invisible-watermark's dwtDctSvd (`EmbedDwtDctSvd`): each 2x2 block of the
  Haar LL band carries one bit in its largest singular value, quantised on a lattice of
  step `scale`. Its sibling dwtDct (`EmbedMaxDct`, the issue's first idea) carries a bit
  in the block's largest coefficient and, in flat areas, lowers it below its neighbours,
  so the reader looks elsewhere: on MRI slices (flat black background) 22 % of its tags
  failed at 64 px with no attack at all.
- **Luminance**: grey is the default deployment, so the tag lives in Y: an "L" image is
  its own Y, an "RGB" one gets the same change on R, G and B (chroma kept, a grey RGB
  image stays grey). The library's U/V default vanishes in an image saved as "L", and in
  U only 32 % of RGB tags survived JPEG q75 (4:2:0) at 64 px. One reader reads both modes.
- **Our own wrapper** round the library's per-block codec: its `encode` refuses images
  under 256x256, swaps the H and V detail bands on the way back and writes floats into
  uint8 (16.5 dB PSNR for scales [40, 0, 0] at 256 px), so the DWT runs here in float64.
- Two changes the library's reader does not notice (its decode_frame reads our blocks):
  the quantiser moves a singular value to the NEAREST lattice point of its bit instead of
  the one above its floor (+1.8 dB PSNR at equal strength), and the blocks are visited in
  a fixed pseudo-random order (`scatter`), so one bit's repetitions are spread over the
  image instead of one column of blocks (a slice's white border had wiped a bit).
- **Payload**: 32 bits = magic byte, release number (16 bits), CRC-8 of those 3 bytes:
  "no tag" and "release v0003" are told apart; an unmarked image passes with odds ~2 in
  65,536 (the one-bit repair of `read_tag` included); 0 of 3,159 unmarked reads did.
- **Audit distances move a little** (64 px, default AuditConfig, 300 candidates against
  600 sources): max |delta| pHash 8 bits (p99 6), pixel L2 0.10, patch L2 0.12, cosine
  0.031, on average away from the sources. That can cross a threshold: at 32 px one of
  199 clean candidates was flagged once marked. The publishing step should audit the
  marked pixels again (same AuditIndex) and publish unmarked what its mark would flag.

imwatermark imports torch (its rivaGan module): 1.1 s cold against 0.13 s for cv2, so it
is imported on the first embed or read, not with this module.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from consentgen.errors import ReleaseError

MAGIC = 0xC6
"""First payload byte: marks a consentgen release tag (random images rarely begin so)."""
WM_BITS = 32
"""Payload length in bits (imwatermark's wmLen): magic, release number, CRC-8."""

MIN_WATERMARK_SIZE = 64
"""Smallest image side that carries the tag reliably (bench/watermark.py, ec9f839).

"Reliably" = on 100 Br35H stand-ins per mode ("L" and "RGB", 1 in 5 of the RGB ones a
tinted file), at this side and every larger one: every tag reads back valid unattacked,
after a PNG re-save and after JPEG q75, and mean bit accuracy is >= 0.99 after a 0.9
resize read back at the nominal side (one bad bit spoils a tag, so a resize may cost
some). 64 px: all valid unattacked / PNG / JPEG q75 in both modes; after the resize bit
accuracy 0.993 and 92 % (L) / 90 % (RGB) of tags valid; PSNR 38.2 dB (min 35.5).
48 px: JPEG q75 still 100 %, but resize accuracy 0.957 (48 % valid). 32 px: JPEG q75
kept 48 % (L) / 54 % (RGB) of tags, a resize 17 % / 15 %, so the default 32 px build
publishes unmarked. 96 px and up: every tag valid after every attack.
"""


class WatermarkParams(BaseModel):
    """How the tag is written: the reader must use the same values (they go in the card)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["dwtDctSvd", "dwtDct"] = "dwtDctSvd"
    scale: float = Field(40.0, gt=0.0)
    """Lattice step in LL units (2x grey levels). At 64 px, 40 = the weakest with resize
    bit accuracy >= 0.99 (0.993); 32: 0.984 and an RGB tag lost to JPEG q75; 48: 0.993
    too, for 1.4 dB less PSNR and larger audit deltas (pixel L2 0.12 against 0.10)."""
    block: int = Field(2, ge=2, le=8, multiple_of=2)
    """Block side in the LL band (cv2.dct needs an even side): 2 -> one bit per 4x4 pixels,
    so a 64 px image holds each of the 32 bits 8 times (4: twice; tried, it lost tags)."""
    channel: Literal["Y", "U"] = "Y"
    """Y for every mode; U (RGB only) is kept for the bench's comparison."""
    nearest: bool = True
    """dwtDctSvd: nearest lattice point of the bit (False = the library's floor + offset)."""
    scatter: bool = True
    """Visit the blocks in a fixed pseudo-random order (False = the library's raster)."""


DEFAULT_PARAMS = WatermarkParams()


class WatermarkReading(BaseModel):
    """What a read found: a valid tag names its release; anything else is "not found"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    found: bool
    release: str | None
    bits: str = Field(pattern=r"^[01]{32}$")
    """The 32 bits as read, '0'/'1', whether or not they form a valid tag."""
    repaired: bool = False
    """True when the tag was valid only after its least confident bit was flipped."""
    confidence: float = Field(ge=0.0, le=1.0)
    """Mean |2 * vote - 1| over the bits, vote = share of a bit's repetitions read as 1:
    1.0 = every repetition agreed. No test of presence: unmarked slices reach 0.61-0.66 at
    their 99th percentile, a flat image 1.0, and resized marked ones fall to ~0.55."""


# --- the payload ----------------------------------------------------------------------

_VERSION = re.compile(r"^v(\d{4,})$")


def release_number(version: str) -> int:
    """The number in a release name ("v0003" -> 3); ReleaseError unless it is canonical.

    Only the names releases get (`v` + at least four digits, no extra leading zeros) up to
    v65535 (16 bits), so that the tag read back names exactly the same string."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    number = int(match.group(1)) if match else -1
    if not match or number > 0xFFFF or f"v{number:04d}" != version:
        raise ReleaseError(
            f"watermark: {version!r} is not a release name the tag can carry "
            "(v0000 to v65535, four digits at least, e.g. v0003)"
        )
    return number


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, init 0, as SMBus): 32-bit tags differ in >= 4 bits.

    So every read with up to 3 wrong bits is caught (checked exhaustively in the tests)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def release_payload(version: str) -> bytes:
    """The 4 payload bytes for `version`: MAGIC, release number (big-endian), CRC-8."""
    number = release_number(version)
    head = bytes((MAGIC, number >> 8, number & 0xFF))
    return head + bytes((crc8(head),))


def parse_payload(payload: bytes) -> str | None:
    """The release a payload names, or None when it is no valid tag (magic or CRC wrong)."""
    if len(payload) != WM_BITS // 8 or payload[0] != MAGIC or crc8(payload[:3]) != payload[3]:
        return None
    return f"v{(payload[1] << 8) | payload[2]:04d}"


def payload_bits(payload: bytes) -> str:
    """Bytes as a '0'/'1' string, most significant bit first (imwatermark's order)."""
    return "".join(f"{byte:08b}" for byte in payload)


def bits_payload(bits: str) -> bytes:
    """The reverse of `payload_bits`."""
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def bit_accuracy(a_bits: str, b_bits: str) -> float:
    """Share of positions where two equally long bit strings agree (1.0 = identical)."""
    if len(a_bits) != len(b_bits) or not a_bits:
        raise ReleaseError(f"bit_accuracy: lengths {len(a_bits)} and {len(b_bits)} differ")
    return sum(x == y for x, y in zip(a_bits, b_bits, strict=True)) / len(a_bits)


def can_carry(size: int) -> bool:
    """Whether images of side `size` carry the tag reliably (see MIN_WATERMARK_SIZE)."""
    return size >= MIN_WATERMARK_SIZE


# --- the library's codec, lazily --------------------------------------------------------


@lru_cache(maxsize=1)
def _codecs() -> dict[str, Any]:
    """imwatermark's per-block codecs; importing it costs ~1.2 s (torch), so only on use."""
    import cv2
    from imwatermark.dwtDctSvd import EmbedDwtDctSvd
    from imwatermark.maxDct import EmbedMaxDct

    class NearestDwtDctSvd(EmbedDwtDctSvd):  # type: ignore[misc]
        """The library's codec with the nearest lattice point (its reader is unchanged)."""

        def diffuse_dct_svd(self, block: np.ndarray, wmBit: int, scale: float) -> np.ndarray:
            u, s, v = np.linalg.svd(cv2.dct(block))
            offset = 0.25 + 0.5 * wmBit
            s[0] = (np.round(s[0] / scale - offset) + offset) * scale
            if s[0] < 0:  # a singular value cannot be negative: next point up
                s[0] += scale
            return cv2.idct(u @ np.diag(s) @ v)

    return {"dwtDctSvd": EmbedDwtDctSvd, "nearest": NearestDwtDctSvd, "dwtDct": EmbedMaxDct}


def _codec(params: WatermarkParams, bits: list[int]) -> Any:
    name = "nearest" if params.method == "dwtDctSvd" and params.nearest else params.method
    return _codecs()[name](bits, wmLen=WM_BITS, scales=[params.scale, 0, 0], block=params.block)


@lru_cache(maxsize=16)
def _scatter_order(n_blocks: int) -> np.ndarray:
    """A fixed permutation of n blocks (blake2b keys: the same on every machine and numpy)."""
    keys = [hashlib.blake2b(k.to_bytes(4, "big"), digest_size=8, person=b"cg-watermark").digest()
            for k in range(n_blocks)]
    return np.array(sorted(range(n_blocks), key=keys.__getitem__), dtype=np.int64)


def _frame(ll: np.ndarray, block: int, scatter: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The LL band as the library's frame: blocks in scattered order when asked."""
    if not scatter:
        return ll, None
    rows, cols = ll.shape[0] // block, ll.shape[1] // block
    blocks = ll.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    order = _scatter_order(len(blocks))
    frame = blocks[order].reshape(rows, cols, block, block).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(frame.reshape(ll.shape)), order


def _unframe(frame: np.ndarray, order: np.ndarray | None, block: int) -> np.ndarray:
    if order is None:
        return frame
    rows, cols = frame.shape[0] // block, frame.shape[1] // block
    blocks = frame.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    out = np.empty_like(blocks)
    out[order] = blocks
    return out.reshape(rows, cols, block, block).transpose(0, 2, 1, 3).reshape(frame.shape)


# --- pixels ---------------------------------------------------------------------------


def _check(image: Image.Image, params: WatermarkParams, *, room: bool = True) -> tuple[int, int]:
    """The (rows, cols) the tag covers; ReleaseError for an odd mode, and (`room`) for an
    image without room for 32 blocks."""
    if not isinstance(image, Image.Image):
        raise ReleaseError(f"watermark: expected a PIL image, got {type(image).__name__}")
    if image.mode not in ("L", "RGB"):
        raise ReleaseError(f"watermark: images must be 'L' or 'RGB', not {image.mode!r}")
    if params.channel == "U" and image.mode != "RGB":
        raise ReleaseError("watermark: channel U needs an RGB image")
    step = 2 * params.block
    rows, cols = image.height // step * step, image.width // step * step
    if room and (rows // step) * (cols // step) < WM_BITS:
        raise ReleaseError(
            f"watermark: a {image.width}x{image.height} image has room for fewer than "
            f"{WM_BITS} blocks of {step}x{step} pixels"
        )
    return rows, cols


def _plane(pixels: np.ndarray, channel: str) -> np.ndarray:
    """float64 carrier plane: Y (an "L" image is its own Y) or U, as cv2's YUV defines them."""
    if pixels.ndim == 2:
        return pixels
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y if channel == "Y" else 0.492 * (b - y) + 128.0


def _apply(pixels: np.ndarray, delta: np.ndarray, channel: str) -> np.ndarray:
    """Add a change of the carrier plane back to the pixels, keeping the other planes."""
    if pixels.ndim == 2:
        return pixels + delta
    if channel == "Y":  # the same change on R, G and B moves Y alone
        return pixels + delta[..., None]
    out = pixels.copy()  # U alone: B and G move so that Y and V stay
    out[..., 2] += 2.0325 * delta
    out[..., 1] -= 0.3947 * delta
    return out


def embed_bits(image: Image.Image, bits: str, *, params: WatermarkParams = DEFAULT_PARAMS
               ) -> Image.Image:
    """`image` with the 32 `bits` written in; same size and mode (no size floor: the bench's).

    Pixels beyond the last whole 2*block rows and columns are left as they were."""
    import pywt

    if len(bits) != WM_BITS or set(bits) - {"0", "1"}:
        raise ReleaseError(f"watermark: expected {WM_BITS} bits as '0'/'1', got {bits!r}")
    rows, cols = _check(image, params)
    pixels = np.asarray(image, dtype=np.float64)
    plane = _plane(pixels, params.channel)[:rows, :cols]
    ll, details = pywt.dwt2(plane, "haar")
    frame, order = _frame(ll, params.block, params.scatter)
    _codec(params, [int(b) for b in bits]).encode_frame(frame, params.scale)
    marked = pywt.idwt2((_unframe(frame, order, params.block), details), "haar")
    delta = np.zeros(pixels.shape[:2])
    delta[:rows, :cols] = marked - plane
    out = np.clip(np.rint(_apply(pixels, delta, params.channel)), 0, 255).astype(np.uint8)
    return Image.fromarray(out, image.mode)


def _votes(image: Image.Image, size: int | None, params: WatermarkParams) -> np.ndarray:
    """Per bit, the share of its repetitions read as 1 (the library's per-block reader)."""
    import pywt

    if size is not None and image.size != (size, size):
        _check(image, params, room=False)  # mode first: resizing would hide an odd one
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    rows, cols = _check(image, params)
    plane = _plane(np.asarray(image, dtype=np.float64), params.channel)[:rows, :cols]
    ll, _ = pywt.dwt2(plane, "haar")
    frame, _order = _frame(ll, params.block, params.scatter)
    scores = _codec(params, []).decode_frame(frame, params.scale, [[] for _ in range(WM_BITS)])
    return np.array([np.mean(s) for s in scores])


def _bits(votes: np.ndarray) -> str:
    return "".join("1" if v * 255 > 127 else "0" for v in votes)  # the library's own rule


def read_bits(image: Image.Image, *, size: int | None = None,
              params: WatermarkParams = DEFAULT_PARAMS) -> tuple[str, float]:
    """(the 32 bits read, confidence) from `image`, first resized back to `size` if given."""
    votes = _votes(image, size, params)
    return _bits(votes), float(np.mean(np.abs(2.0 * votes - 1.0)))


def read_tag(image: Image.Image, *, size: int | None = None,
             params: WatermarkParams = DEFAULT_PARAMS) -> WatermarkReading:
    """`read_watermark` without its size floor (for the bench's small sides).

    A read that is no valid tag gets one repair: its least confident bit is flipped and
    the tag checked again. CRC-8 (0x07) leaves 32-bit tags at least 4 bits apart, so a
    read with up to two wrong bits can never turn into another release this way; an
    unmarked image now passes with odds ~2 in 65,536 instead of 1 (after a 0.9 resize at
    64 px the repair turned 81 % valid tags into 92 %)."""
    votes = _votes(image, size, params)
    bits = _bits(votes)
    release, repaired = parse_payload(bits_payload(bits)), False
    if release is None:
        weakest = int(np.argmin(np.abs(2.0 * votes - 1.0)))
        flipped = bits[:weakest] + ("1" if bits[weakest] == "0" else "0") + bits[weakest + 1:]
        release = parse_payload(bits_payload(flipped))
        repaired = release is not None
    return WatermarkReading(found=release is not None, release=release, bits=bits,
                            repaired=repaired,
                            confidence=round(float(np.mean(np.abs(2.0 * votes - 1.0))), 4))


# --- the release tag --------------------------------------------------------------------


def _refuse_small(image: Image.Image, side: int) -> None:
    if not can_carry(side):
        raise ReleaseError(
            f"watermark: {side} px images (this one {image.width}x{image.height}) do not carry "
            f"the tag reliably (from {MIN_WATERMARK_SIZE} px on): publish them unmarked and "
            "say so in the card"
        )


def embed_watermark(image: Image.Image, version: str) -> Image.Image:
    """`image` tagged with release `version`: same size and mode, deterministic.

    ReleaseError for a bad version name, a mode other than "L"/"RGB", or an image whose
    smaller side is under MIN_WATERMARK_SIZE (there the tag would not read back)."""
    bits = payload_bits(release_payload(version))
    _check(image, DEFAULT_PARAMS, room=False)
    _refuse_small(image, min(image.size))
    return embed_bits(image, bits)


def read_watermark(image: Image.Image, *, size: int | None = None) -> WatermarkReading:
    """The release tag in `image`, if any.

    `size` is the release's nominal image side, which a reader knows from the release's
    manifest or card: an image that was resized since (a thumbnail, a re-export) is
    resized back to it before reading, because the tag lives on a grid of 4x4-pixel
    blocks. Without it the image is read at its own size. A nominal side under
    MIN_WATERMARK_SIZE is refused (ReleaseError): such releases were published unmarked,
    and "not found" would wrongly suggest a removed tag."""
    _check(image, DEFAULT_PARAMS, room=False)
    _refuse_small(image, size if size is not None else min(image.size))
    return read_tag(image, size=size)


def describe(params: WatermarkParams = DEFAULT_PARAMS) -> str:
    """One line for the data card: what was embedded, how, and from which size."""
    return (
        f"invisible-watermark {params.method} on "
        f"{'luminance' if params.channel == 'Y' else 'chroma (U)'} (scale {params.scale:g}, "
        f"{params.block}x{params.block} blocks of the Haar LL band), a {WM_BITS}-bit tag "
        f"(magic 0x{MAGIC:02X}, release number, CRC-8), in images of {MIN_WATERMARK_SIZE} px "
        "and more; smaller images are published without it"
    )
