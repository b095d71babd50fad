"""TensorBoard's event-file records, written and read without TensorBoard's TensorFlow stub.

An event file is a sequence of records, each (little-endian): the data's length as uint64, the
masked CRC-32C of those 8 bytes as uint32, the data (a serialized `Event`), the masked CRC-32C
of the data as uint32. TensorBoard's own record writer takes its CRC from
`tensorboard.compat.tensorflow_stub`, whose import pulls in absl's flags, boto3 and fsspec: 0.17 s
of every run's start-up on a 2-core machine (`bench/startup_floor.py`), for a format of a few
lines. The CRC here is table-driven Python, as TensorBoard's is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_CASTAGNOLI = 0x82F63B78  # CRC-32C's polynomial, bit-reversed
_MASK_DELTA = 0xA282EAD8  # TFRecord's mask: rotate right by 15 bits, add this


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc32c(data: bytes) -> int:
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One record holding `data`, as bytes to append to an event file."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def read_records(path: str) -> Iterator[bytes]:
    """The data of each whole, intact record of the file at `path`, in order; reading stops at a
    record that is cut short (still being written) or whose checksums do not match."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12 or struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
                return
            (length,) = struct.unpack("<Q", header[:8])
            data, footer = f.read(length), f.read(4)
            if len(data) < length or len(footer) < 4 or struct.unpack("<I", footer)[0] != masked_crc32c(data):
                return
            yield data
