"""Refuse PKCS#12 files whose key derivation would burn the CPU before we even open them.

A PKCS#12 file names its own iteration counts: one for the MAC, one per encrypted bag. OpenSSL,
Windows and Java export with 2,000-10,000; nothing legitimate needs millions. An upload with an
iteration count of 2^31 would keep a worker busy for minutes, so mutls reads the counts first.

The walk is a bounded DER scan, not a PKCS#12 parser: it descends into SEQUENCEs, SETs,
context tags and OCTET STRINGs that hold DER, and reports every INTEGER that directly follows an
OCTET STRING in the same SEQUENCE: the ``salt, iterations`` shape shared by MacData, PBEParameter
(PKCS#12 and PKCS#5 v1) and PBKDF2-params. Anything it cannot walk is left to the real parser.
"""

from __future__ import annotations

__all__ = ["MAX_PKCS12_ITERATIONS", "MAX_TOTAL_ITERATIONS", "kdf_iterations"]

MAX_PKCS12_ITERATIONS = 1_000_000
MAX_TOTAL_ITERATIONS = 4_000_000
_MAX_DEPTH = 24
_MAX_NODES = 20_000

_SEQUENCE, _SET, _OCTET_STRING, _INTEGER = 0x30, 0x31, 0x04, 0x02


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _header(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, start of content, end of content), or None if malformed."""
    if pos + 2 > len(data):
        return None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            return None
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    return (tag, pos, end) if end <= len(data) else None


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]] | None:
    out: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        head = _header(data, pos)
        if head is None or head[2] > end:
            return None
        out.append(head)
        pos = head[2]
    return out


def _walk(
    data: bytes, start: int, end: int, *, depth: int, budget: _Budget, found: list[int]
) -> None:
    if depth > _MAX_DEPTH:
        return
    children = _children(data, start, end)
    if children is None:
        return
    for index, (tag, c_start, c_end) in enumerate(children):
        budget.nodes += 1
        if budget.nodes > _MAX_NODES:
            return
        previous = children[index - 1][0] if index else None
        if tag == _INTEGER and previous == _OCTET_STRING and 0 < c_end - c_start <= 8:
            found.append(int.from_bytes(data[c_start:c_end], "big", signed=False))
        constructed = tag in (_SEQUENCE, _SET) or (tag & 0xE0) == 0xA0
        if constructed or tag == _OCTET_STRING:
            _walk(data, c_start, c_end, depth=depth + 1, budget=budget, found=found)


def kdf_iterations(data: bytes) -> list[int]:
    """Every iteration count found in a DER PKCS#12 file (empty if none can be read)."""
    found: list[int] = []
    _walk(data, 0, len(data), depth=0, budget=_Budget(), found=found)
    return found
