"""The one exception hierarchy of consentgen.

Every error the project raises on purpose derives from `ConsentgenError`, so callers
(the CLI above all) can print one clear line for anything we anticipated and let
genuine bugs surface as tracebacks.
"""

from __future__ import annotations


class ConsentgenError(Exception):
    """Root of every anticipated consentgen failure."""


class ConfigError(ConsentgenError):
    """A setting, path or argument that cannot be used as given."""


class NoDataHomeError(ConfigError):
    """A command other than `consentgen init` pointed at a folder that is no data home
    (a mistyped `CONSENTGEN_HOME` must not silently become a new one)."""


class UndeclaredPurposeError(ConfigError):
    """A consent purpose the build file does not declare (a misspelt purpose would be
    recorded forever while the subject's real consent stays untouched)."""


# --- consent ledger -------------------------------------------------------------------


class LedgerError(ConsentgenError):
    """Anything that goes wrong with the consent ledger."""


class InvalidEventError(LedgerError):
    """An event that breaks the ledger's rules (naive time, empty subject, bad action...)."""


class EventConflictError(LedgerError):
    """An event id that is already in the ledger with other content."""

    def __init__(self, message: str, event_ids: list[str] | None = None) -> None:
        self.event_ids = list(event_ids or [])
        super().__init__(message)


class LedgerLockedError(LedgerError):
    """Another process held the ledger file for longer than the bounded wait."""


class LedgerIntegrityError(LedgerError):
    """The hash chain does not verify; names the first bad sequence number."""

    def __init__(self, seq: int, expected: str | None, found: str | None, detail: str) -> None:
        self.seq = seq
        self.expected = expected
        self.found = found
        self.detail = detail
        super().__init__(
            f"ledger integrity broken at sequence {seq}: {detail} "
            f"(expected {expected or '-'}, found {found or '-'})"
        )


class ImportRejectedError(LedgerError):
    """A consent import file with bad lines; nothing from it was appended."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = problems
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{source}: {len(problems)} bad line(s), nothing imported: {shown}{more}"
        )


# --- images and the catalog -----------------------------------------------------------


class DecodeError(ConsentgenError):
    """An untrusted image that cannot be decoded safely; `reason` is a stable short code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class CatalogError(ConsentgenError):
    """The pipeline catalog cannot be read or written as needed."""


class UnknownSubjectError(CatalogError):
    """A subject id that the catalog or ledger has never seen."""


# --- generators, audit, releases --------------------------------------------------------


class GeneratorError(ConsentgenError):
    """Training, sampling or loading a generator failed."""


class CheckpointError(GeneratorError):
    """A checkpoint that is missing, incomplete or lacks its training record list."""


class AuditError(ConsentgenError):
    """The memorisation audit could not run or could not meet its target."""


class ReplacementExhaustedError(AuditError):
    """The bounded replacement rounds ran out with near-duplicates still being drawn.

    Raised by the one replacement loop (`validation.audit.replace_near_duplicates`),
    for the tests and the build alike. The counts are there for a person deciding what
    to do about the generator: a model that keeps drawing copies is memorising, and
    more rounds only hide that.
    """

    def __init__(self, n_flagged: int, n_open: int, n_kept: int, target: int,
                 rounds: int) -> None:
        self.n_flagged = n_flagged  # flagged over all rounds
        self.n_open = n_open  # flagged in the last round: left without a replacement
        self.n_kept = n_kept
        self.target = target
        self.rounds = rounds  # rounds drawn: the first draw and every replacement round
        super().__init__(
            f"{n_flagged} candidate(s) were near-duplicates of a source over {rounds} "
            f"round(s) of sampling (the first draw and {max(rounds - 1, 0)} replacement "
            f"round(s)); {n_open} still were in the last, so kept {n_kept} of the {target} "
            "wanted. The generator may be memorising its training images: check it (more "
            "records, fewer epochs, DP) before raising max_replacement_rounds"
        )

    def __reduce__(self) -> tuple[type, tuple[int, int, int, int, int]]:
        # pickled across processes (multiprocess executors): rebuild from the counts
        return type(self), (self.n_flagged, self.n_open, self.n_kept, self.target, self.rounds)


class BuildInputError(ConsentgenError):
    """The sources, consent and settings cannot make a release as asked; found by the
    eligible_records step, before any training, and said in one line with what to change."""


class NoEligibleRecordsError(BuildInputError):
    """No source record may be used for the build's purpose (counts by exclusion reason)."""


class TooFewRecordsError(BuildInputError):
    """Eligible records exist, but too few for the shards or classes the build asks for."""


class MissingWeightsError(BuildInputError):
    """kind = "img2img" names no usable local Stable Diffusion folder (missing, or without
    model_index.json); weights are never fetched, so the build stops before any work."""


class ReleaseError(ConsentgenError):
    """A release could not be published or withdrawn as asked."""


class HomeLockedError(ConsentgenError):
    """Another process holds one of the data home's locks (a build, a publish)."""


# --- the consent service ------------------------------------------------------------------


class ServiceError(ConsentgenError):
    """The consent service, its tokens or its access log."""


class TokenError(ServiceError):
    """A token that cannot be created, found or revoked as asked."""


class AccessLogIntegrityError(ServiceError):
    """The access log's hash chain does not verify; names the first bad sequence number."""

    def __init__(self, seq: int, detail: str) -> None:
        self.seq = seq
        self.detail = detail
        super().__init__(f"access log integrity broken at sequence {seq}: {detail}")


class ServiceUnavailableError(ServiceError):
    """The home's consent service is running but did not answer as it should."""
