"""Landing text files: gzip-aware opening and encoding checks (the contract is UTF-8).

Shared by ingest (which reads the first bytes and the header of every CSV / JSON-lines file
before Spark does) and the campaign-log import (which explains a decoding failure by line).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

GZIP_SUFFIX = ".gz"
UTF8_BOM = b"\xef\xbb\xbf"
#: byte-order marks of the encodings a landing file must not use (longest first: UTF-32 LE starts like UTF-16 LE)
FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian byte-order mark)"),
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian byte-order mark)"),
    (b"\xfe\xff", "UTF-16 (big-endian byte-order mark)"),
    (b"\xff\xfe", "UTF-16 (little-endian byte-order mark)"),
)


def is_gzip(path: Path) -> bool:
    return path.name.endswith(GZIP_SUFFIX)


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text (undecodable bytes replaced, a leading BOM kept), decompressed if ``.gz``."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def read_head(path: Path, size: int = 64 * 1024) -> bytes:
    """The first ``size`` (decompressed) bytes of the file."""
    with open_binary(path) as fh:
        return fh.read(size)


def foreign_encoding(head: bytes) -> str | None:
    """The encoding the first bytes reveal when it is not UTF-8 (a BOM, or UTF-16's NUL bytes), else None.

    UTF-16 without a byte-order mark shows as a NUL byte next to every ASCII character; a stray
    NUL (binary garbage in a text file) is left to the parser, which quarantines the line.
    """
    for bom, name in FOREIGN_BOMS:
        if head.startswith(bom):
            return name
    sample = head[:4096]
    if len(sample) >= 16:
        even, odd = sample[0::2], sample[1::2]
        if even.count(0) > 0.4 * len(even) or odd.count(0) > 0.4 * len(odd):
            return "UTF-16 without a byte-order mark, or binary (NUL bytes between the characters)"
    return None


def first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(1-based line, offending byte) of the first line that is not valid UTF-8, or None."""
    with open_binary(path) as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, line[exc.start]
    return None
