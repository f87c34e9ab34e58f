"""SISA shard assignment: a subject always lands in the same shard, in every process.

SHA-256 of a domain-separated UTF-8 subject id, first 8 bytes big-endian, modulo k.
Python's `hash` is salted per process and must never be used here. Changing this
function moves subjects between shards and forces a retrain of every shard, so the
domain string carries a version and tests pin fixed vectors.
"""

from __future__ import annotations

import hashlib

from generators.errors import GeneratorInputError

SHARD_DOMAIN = b"consentgen/shard/v1\x00"


def shard_of(subject_id: str, k: int) -> int:
    """The shard in [0, k) of `subject_id`."""
    if not isinstance(subject_id, str) or not subject_id:
        raise GeneratorInputError(f"subject_id must be a non-empty string, got {subject_id!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GeneratorInputError(f"shard count k must be a positive integer, got {k!r}")
    digest = hashlib.sha256(SHARD_DOMAIN + subject_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % k
