"""`consentgen verify-image FILE`: what provenance an image carries, and whether it holds.

Three things are read back, each on its own, because each can be lost on its own: the
C2PA manifest (signature, data hash, and the signer's chain against trust anchors), the
XMP ``Iptc4xmpExt:DigitalSourceType``, and the invisible watermark (which survives a
re-save that drops both metadata blocks, from `MIN_WATERMARK_SIZE` px up).

Trust anchors: ``--trust PEM``, else the home's (the build file's
``provenance.trust_anchors``, else the last certificate of its ``sign_cert``, else the
development CA ``keys/dev-signer/ca.pem`` when the home has one; this command never
makes a signer), else none, and the report says a signer could then not be trusted.

Exit status (`EXIT_*`), one verdict each: 0 verified (a manifest Trusted by the anchors
holding our release provenance: the three assertions, no thumbnail, no ingredient); 1 not
verified (the manifest fails validation: altered after signing, or damaged; or nothing of
ours); 2 not checked (not a regular file, not a PNG or JPEG, too large, a bomb, a bad
option, out of memory), in one line; 3 untrusted (intact, but the anchors do not trust
its signer, or there are none); 4 expired (the signing certificate expired since: our
releases carry no trusted timestamp, so the SDK checks it against today and the signature
cannot be checked any more; nothing says the file was altered); 5 release tag only (no
manifest, a tag in the pixels: public and unkeyed, anyone can embed one and an unmarked
image reads as tagged ~2 in 65,536, so it never verifies); 6 not ours (Trusted, but not
our release provenance: another claim under the same CA, a thumbnail, an ingredient).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.markup import escape

from consentgen.errors import ConfigError, ConsentgenError, DecodeError
from pipelines.cli.common import HomeOption, check_range, console, err_console

EXIT_VERIFIED, EXIT_NOT_VERIFIED, EXIT_UNCHECKED, EXIT_UNTRUSTED = 0, 1, 2, 3
EXIT_EXPIRED, EXIT_TAG_ONLY, EXIT_NOT_OURS = 4, 5, 6
MAX_SIZE = 4096
"""The largest ``--size``: reading at N px resizes to N x N (4096 px takes ~12 s)."""
_EXPIRED, _UNTRUSTED = "signingCredential.expired", "signingCredential.untrusted"
_RELEASE_KEYS = ("release", "generator", "consent_ledger_head")
_CREATED_LABELS = ("c2pa.actions.v2", "c2pa.actions")
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


class TrustSource(BaseModel):
    """Where the trust anchors came from (None: there were none)."""

    path: str | None = None
    origin: str = "none"
    """``--trust``, ``build file provenance.trust_anchors``, ``build file
    provenance.sign_cert``, ``home development CA`` or ``none``."""
    development: bool = False


class ManifestReport(BaseModel):
    present: bool = False
    state: str | None = None
    """``Trusted``, ``Valid`` (intact, signer untrusted), ``Invalid``, or ``Unreadable``."""
    codes: list[str] = []
    error: str | None = None
    signer: dict[str, str] = {}
    certificate_not_after: dt.datetime | None = None
    """When the signing certificate (the leaf) expires: the signature verifies until then."""
    claim_generator: list[str] = []
    assertions: list[str] = []
    digital_source_type: str | None = None
    """Of the ``c2pa.created`` action."""
    training_mining: dict[str, str] = {}
    release: dict[str, Any] | None = None
    """``org.consentgen.release``: release, generator, consent_ledger_head."""
    not_ours: list[str] = []
    """Why a Trusted manifest is not consentgen's release provenance ([] when it is)."""


class XmpReport(BaseModel):
    packets: int = 0
    digital_source_types: list[str] = []
    errors: list[str] = []


class WatermarkReport(BaseModel):
    checked: bool = False
    found: bool = False
    release: str | None = None
    note: str = ""


class ImageReport(BaseModel):
    """Everything `verify-image` prints (``--json`` prints this)."""

    file: str
    format: str
    size: tuple[int, int] | None
    trust: TrustSource
    manifest: ManifestReport
    xmp: XmpReport
    watermark: WatermarkReport
    verdict: str
    exit_code: int


def verify_image(
    file: Annotated[Path, typer.Argument(help="The PNG or JPEG to check.", show_default=False)],
    trust: Annotated[Path | None, typer.Option(
        "--trust", help="PEM trust anchor(s) (default: the home's).", show_default=False)] = None,
    size: Annotated[int | None, typer.Option(
        "--size", help=f"Side in px the image was published at (1 to {MAX_SIZE}), to read the "
        "watermark of a resized copy.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Report an image's C2PA manifest, XMP source type and watermark. Exit 0 verified
    (trusted and ours), 1 not verified (altered, or nothing of ours), 2 could not be
    checked, 3 intact but signer untrusted, 4 signing certificate expired, 5 release tag
    only (not authenticated), 6 trusted but not our provenance."""
    try:
        check_range("--size", size, 1, max_size())
        report = inspect_image(file, trust=trust, size=size, home=home)
        if as_json:
            typer.echo(report.model_dump_json(indent=2))
        else:
            for line in report_lines(report):
                console.print(escape(line), highlight=False, soft_wrap=True)
        code = report.exit_code
    except ConsentgenError as exc:
        _refuse(str(exc))
        code = EXIT_UNCHECKED
    except MemoryError:
        _refuse(f"{file}: out of memory while checking it")
        code = EXIT_UNCHECKED
    raise typer.Exit(code)


def _refuse(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def max_size() -> int:
    """The largest ``--size``: `MAX_SIZE`, and no more than the decoder's pixel limit."""
    from validation.sources.decode import DecodeConfig

    return min(MAX_SIZE, math.isqrt(DecodeConfig().max_pixels))


def inspect_image(file: Path, *, trust: Path | None = None, size: int | None = None,
                  home: Path | None = None) -> ImageReport:
    """The report on one file; `ConsentgenError` (one line) when it cannot be checked."""
    from validation.sources.c2pa_store import read_c2pa
    from validation.sources.decode import DecodeConfig, Reason, decode_bytes, read_limited
    from validation.sources.xmp import read_xmp

    config = DecodeConfig(formats=("PNG", "JPEG"))
    try:
        data = read_limited(file, config)
    except DecodeError as exc:
        raise _about(file, exc) from None
    if data.startswith(_PNG):
        fmt, mime = "PNG", "image/png"
    elif data.startswith(_JPEG):
        fmt, mime = "JPEG", "image/jpeg"
    else:
        raise DecodeError(Reason.NOT_AN_IMAGE, f"{file} is not a PNG or JPEG image")
    source, pem = trust_anchors(trust, home)
    store = read_c2pa(data, mime, trust_anchors=pem)
    xmp = read_xmp(data)
    try:
        image = decode_bytes(data, config).image
        undecoded = None
    except DecodeError as exc:  # a bomb, or broken bytes that carry nothing to report
        if exc.reason == Reason.TOO_MANY_PIXELS or (store is None and not xmp.packets):
            raise _about(file, exc) from None
        image, undecoded = None, str(exc)
    manifest = manifest_report(store)
    if manifest.present and manifest.state != "Unreadable":
        manifest.certificate_not_after = certificate_not_after(data, mime, store.active)
    if manifest.state == "Trusted" and pem is not None:
        manifest.not_ours = not_ours(data, fmt, manifest, pem)
    mark = watermark_report(image, size, undecoded)
    code, verdict = judge(manifest, mark, source)
    return ImageReport(
        file=str(file), format=fmt, size=image.size if image is not None else None,
        trust=source, manifest=manifest,
        xmp=XmpReport(packets=xmp.packets, digital_source_types=list(xmp.digital_source_types),
                      errors=list(xmp.errors)),
        watermark=mark, verdict=verdict, exit_code=code)


def _about(file: Path, exc: DecodeError) -> DecodeError:
    """The decoder's refusal, naming the file once."""
    message = str(exc).removeprefix(f"{exc.reason}: ")
    return DecodeError(exc.reason, message if str(file) in message else f"{file}: {message}")


def trust_anchors(trust: Path | None, home: Path | None) -> tuple[TrustSource, str | None]:
    """The anchors to verify with, and where they came from (see the module docstring)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from consentgen.home import data_home, is_data_home
    from validation.release.signer import CA_FILE, DEV_SIGNER_DIR

    if trust is not None:
        return TrustSource(path=str(trust), origin="--trust"), _pem_certificates(trust)
    root = data_home(home)
    if not is_data_home(root):
        return TrustSource(), None
    from pipelines.buildfile import load_config_leniently

    settings = load_config_leniently(root)[0].provenance
    if settings.trust_anchors is not None:
        return (TrustSource(path=str(settings.trust_anchors),
                            origin="build file provenance.trust_anchors"),
                _pem_certificates(settings.trust_anchors))
    if settings.sign_cert is not None:
        chain = _pem_certificates(settings.sign_cert)
        last = x509.load_pem_x509_certificates(chain.encode())[-1]
        return (TrustSource(path=str(settings.sign_cert), origin="build file provenance.sign_cert"),
                last.public_bytes(Encoding.PEM).decode("ascii"))
    ca = root / DEV_SIGNER_DIR / CA_FILE
    if ca.is_file():
        return (TrustSource(path=str(ca), origin="home development CA", development=True),
                _pem_certificates(ca))
    return TrustSource(), None


def _pem_certificates(path: Path) -> str:
    """The certificates of a PEM file, re-encoded; one line when it holds none."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"trust anchors: cannot read {path}: {exc.strerror or exc}") from None
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise ConfigError(f"trust anchors: {path} holds no PEM certificate") from None
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)


def manifest_report(store: Any) -> ManifestReport:
    """What the active manifest says, judged as the SDK judged it."""
    if store is None:
        return ManifestReport()
    if store.error:
        return ManifestReport(present=True, state="Unreadable", error=store.error)
    state = "Invalid" if store.failures or store.state == "Invalid" else store.state
    report = ManifestReport(present=True, state=state, codes=list(store.codes))
    active = store.active_manifest
    if active is None:
        return report
    created = next((a for label in _CREATED_LABELS if (a := active.assertion(label))), None)
    actions = (created.data or {}).get("actions", []) if created is not None else []
    source = next((a.get("digitalSourceType") for a in actions
                   if isinstance(a, dict) and a.get("action") == "c2pa.created"), None)
    mining = active.assertion("cawg.training-mining") or active.assertion("c2pa.training-mining")
    entries = (mining.data or {}).get("entries", {}) if mining is not None else {}
    release = active.assertion("org.consentgen.release")
    return report.model_copy(update={
        "signer": dict(active.signer), "claim_generator": list(active.claim_generator),
        "assertions": [a.label for a in active.assertions], "digital_source_type": source,
        "training_mining": {k: str(v.get("use")) for k, v in entries.items() if isinstance(v, dict)},
        "release": release.data if release is not None and isinstance(release.data, dict) else None})


def certificate_not_after(data: bytes, mime: str, label: str | None) -> dt.datetime | None:
    """The signing certificate's expiry, from the SDK's crJSON report (its plain report
    names the signer but not the validity); None when it says nothing."""
    import c2pa

    offline = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    settings = c2pa.Settings.from_dict(offline)
    try:
        with c2pa.Context(settings=settings) as context, \
                c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            report = json.loads(reader.crjson())
        manifest = next(m for m in report.get("manifests") or []
                        if isinstance(m, dict) and m.get("label") == label)
        value = manifest["signature"]["certificateInfo"]["validity"]["notAfter"]
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    except Exception:  # the SDK's errors, a report of another shape: no date to show
        return None


def not_ours(data: bytes, fmt: str, manifest: ManifestReport, pem: str) -> list[str]:
    """Why a manifest the anchors trust is not consentgen's release provenance ([] when
    it is), by the release gate's own check against the file's own release assertion."""
    from validation.release import provenance as ours

    if fmt != "PNG":
        return ["a JPEG: consentgen publishes PNG images only"]
    declared = manifest.release if isinstance(manifest.release, dict) else {}
    lacks = [k for k in _RELEASE_KEYS if not isinstance(declared.get(k), str)]
    problems = ([f"{ours.RELEASE_ASSERTION} lacks {', '.join(lacks)}"]
                if manifest.release is not None and lacks else [])
    uses = set(manifest.training_mining.values())
    use = uses.pop() if len(uses) == 1 else "notAllowed"
    provenance = ours.ReleaseProvenance(
        release=str(declared.get("release", "")), generator=str(declared.get("generator", "")),
        ledger_head=str(declared.get("consent_ledger_head", "")),
        training_mining=use if use in ("notAllowed", "allowed", "constrained") else "notAllowed")
    found = ours.manifest_problems(data, ours.ExpectedProvenance(provenance=provenance,
                                                                 trust_pem=pem.encode()))
    repeated = f"assertion {ours.RELEASE_ASSERTION} differs from this release's"
    return problems + [p for p in found if not (problems and p == repeated)]


def watermark_report(image: Any, size: int | None, undecoded: str | None) -> WatermarkReport:
    """The watermark read back, or why it was not looked for."""
    from validation.release.watermark import MIN_WATERMARK_SIZE, can_carry, read_watermark

    if image is None:
        return WatermarkReport(note=f"not checked: the pixels do not decode ({undecoded})")
    side = size if size is not None else min(image.size)
    if not can_carry(side):
        return WatermarkReport(note=f"not checked: {side} px is below {MIN_WATERMARK_SIZE} px, "
                                    "the smallest size that carries it reliably")
    reading = read_watermark(image, size=size)
    if not reading.found:
        return WatermarkReport(checked=True, note="not found")
    return WatermarkReport(checked=True, found=True, release=reading.release,
                           note=f"found: release {reading.release}")


def judge(manifest: ManifestReport, mark: WatermarkReport, trust: TrustSource) -> tuple[int, str]:
    """The exit status and the verdict's sentence (see the module docstring)."""
    if manifest.state == "Unreadable" or (
            manifest.state == "Invalid" and set(manifest.codes) - {_UNTRUSTED} != {_EXPIRED}):
        return EXIT_NOT_VERIFIED, ("NOT VERIFIED: the C2PA manifest fails validation (the file "
                                   "was altered after signing, or the manifest is damaged)")
    if manifest.state == "Invalid":
        when = (f"{manifest.certificate_not_after:%Y-%m-%d %H:%M} UTC"
                if manifest.certificate_not_after else "a date the manifest does not show")
        return EXIT_EXPIRED, (f"EXPIRED: signed, but the signing certificate expired on {when}; "
                              "without a trusted timestamp the signature cannot be checked any more")
    if manifest.state == "Trusted" and manifest.not_ours:
        return EXIT_NOT_OURS, ("NOT OURS: a trusted signer, but the manifest is not consentgen's "
                               f"release provenance ({'; '.join(manifest.not_ours)})")
    if manifest.state == "Trusted":
        whose = (" (this home's development CA: trusted here only)" if trust.development else "")
        return EXIT_VERIFIED, f"verified: the C2PA manifest is intact and its signer is trusted{whose}"
    if manifest.present:
        why = "no trust anchors were given" if trust.path is None else "it does not chain to the trust anchors"
        return EXIT_UNTRUSTED, f"UNTRUSTED: the C2PA manifest is intact but its signer is not trusted ({why})"
    if mark.found:
        return EXIT_TAG_ONLY, (f"RELEASE TAG FOUND: not authenticated (release {mark.release}): the "
                               "metadata is gone and the pixels carry a consentgen release tag, but "
                               "anyone can embed one (and an unmarked image reads as tagged about 2 "
                               "times in 65,536), so it proves nothing")
    return EXIT_NOT_VERIFIED, "NOT VERIFIED: the file carries none of our provenance"


def report_lines(report: ImageReport) -> list[str]:
    """The report as `verify-image` prints it, one fact a line."""
    size = f", {report.size[0]}×{report.size[1]}" if report.size else ""
    trust = report.trust
    lines = [f"file       {report.file} ({report.format}{size})",
             "trust      " + (f"{trust.path} ({trust.origin})" if trust.path else
                              "none: no --trust and no anchors in the home")]
    lines += _manifest_lines(report.manifest)
    xmp = report.xmp
    lines.append("XMP        " + (f"DigitalSourceType {', '.join(xmp.digital_source_types)}"
                                  if xmp.digital_source_types else
                                  f"no DigitalSourceType ({xmp.packets} packet(s))"))
    lines += [f"  error    {e}" for e in xmp.errors]
    lines.append(f"watermark  {report.watermark.note}")
    lines.append(f"verdict    {report.verdict} (exit {report.exit_code})")
    return lines


def _manifest_lines(m: ManifestReport) -> list[str]:
    if not m.present:
        return ["C2PA       none: the file carries no C2PA manifest"]
    if m.state == "Unreadable":
        return [f"C2PA       unreadable: {m.error}"]
    state = {"Valid": "Valid but untrusted signer"}.get(m.state or "", m.state or "unknown")
    lines = [f"C2PA       {state}" + (f": {', '.join(m.codes)}" if m.codes else "")]
    if m.signer:
        until = (f", certificate valid until {m.certificate_not_after:%Y-%m-%d %H:%M} UTC"
                 if m.certificate_not_after else "")
        lines.append(f"  signer   {m.signer.get('common_name', '?')}, issuer "
                     f"{m.signer.get('issuer', '?')}{until}")
    lines.append(f"  created  digitalSourceType {m.digital_source_type or 'none'}")
    mining = ", ".join(f"{k} {v}" for k, v in sorted(m.training_mining.items()))
    lines.append(f"  training {mining or 'no training-mining assertion'}")
    if m.release is not None:
        lines.append(f"  release  {m.release.get('release')}, generator {m.release.get('generator')}, "
                     f"consent ledger head {m.release.get('consent_ledger_head')}")
    else:
        lines.append("  release  no org.consentgen.release assertion")
    return lines
