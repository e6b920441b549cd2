"""Record ids: 15-character case-sensitive ids and their 18-character case-safe form.

An id is the object's 3-character key prefix, then 12 base-62 characters. The 18-character form
appends a 3-character checksum that encodes which of the first 15 characters are upper case, so
the id survives case-insensitive systems. Interlink always answers with 18 characters and accepts
both forms wherever an id is accepted.

The 12 characters after the prefix pack a millisecond clock, a per-process random tag and a counter,
so ids are unique across processes without a database round trip and roughly sortable by creation.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15_RE = re.compile(r"^[a-zA-Z0-9]{15}\Z")
_ID18_RE = re.compile(r"^[a-zA-Z0-9]{15}[a-zA-Z0-5]{3}\Z")  # \Z: "$" would accept a trailing newline
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_BODY_LEN = 12


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-safe."""
    suffix = []
    for chunk_start in (0, 5, 10):
        bits = 0
        for position, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix.append(_CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


def to_18(record_id: str) -> str:
    """Return the 18-character form of a 15- or 18-character id (validated)."""
    normalized = normalize(record_id)
    if normalized is None:
        raise ValueError(f"not a record id: {record_id!r}")
    return normalized


def normalize(value: object) -> str | None:
    """Return the canonical 18-character id for ``value``, or None if it is not a well-formed id.

    18-character ids are case-insensitive, as on the platform: the suffix says which of the first 15
    characters are upper case, so ``001d000000iqhsliaz`` is the same record as ``001D000000IqhSLIAZ``.
    """
    if not isinstance(value, str):
        return None
    return _normalize(value)


@functools.lru_cache(maxsize=8192)
def _normalize(value: str) -> str | None:
    if len(value) == 15:
        return value + checksum(value) if _ID15_RE.match(value) else None
    if len(value) != 18 or not _ID18_RE.match(value):
        return None
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, marker in enumerate(suffix):
        bits = _CHECKSUM_ALPHABET.index(marker)
        for position in range(5):
            index = chunk * 5 + position
            char = chars[index]
            if bits & (1 << position):
                if not char.isalpha():
                    return None  # the suffix says upper case where there is no letter: not an id
                chars[index] = char.upper()
            else:
                chars[index] = char.lower()
    return "".join(chars) + suffix


def is_valid(value: object) -> bool:
    return normalize(value) is not None


def key_prefix(record_id: str) -> str:
    return record_id[:3]


def _encode62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        chars.append(BASE62[remainder])
    return "".join(reversed(chars))


class IdGenerator:
    """Thread-safe generator of new 18-character ids for a key prefix.

    Layout of the 12 characters after the prefix (62**12 is about 2**71):
    milliseconds since 2020 (43 bits) | process tag (12 bits) | counter (16 bits).
    """

    def __init__(self, process_tag: int | None = None) -> None:
        self._lock = threading.Lock()
        self._tag = (process_tag if process_tag is not None else int.from_bytes(os.urandom(2), "big")) & 0xFFF
        self._last_ms = 0
        self._counter = 0

    def new(self, prefix: str) -> str:
        if len(prefix) != 3:
            raise ValueError(f"key prefix must have 3 characters: {prefix!r}")
        with self._lock:
            now_ms = int(time.time() * 1000) - _EPOCH_MS
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFFF:
                    now_ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = now_ms
            packed = (now_ms << 28) | (self._tag << 16) | self._counter
        id15 = prefix + _encode62(packed, _BODY_LEN)
        return id15 + checksum(id15)


_default_generator = IdGenerator()


def new_id(prefix: str) -> str:
    """A new 18-character id with ``prefix`` from the process-wide generator."""
    return _default_generator.new(prefix)


__all__ = ["IdGenerator", "checksum", "is_valid", "key_prefix", "new_id", "normalize", "to_18"]
