"""Just enough of TFRecord framing and protobuf's wire format to read scalars from TensorBoard event files.

A record is: length (uint64 LE), masked CRC-32C of the length, data, masked CRC-32C of the data.
The length's checksum is verified (a broken frame stops the file); the data's is not, since
CRC-32C in pure Python would cost more than the rest of the import.
"""

import struct
from collections.abc import Iterator
from pathlib import Path

_CRC32C = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC32C.append(_crc)


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path: Path, problems: list[str] | None = None) -> Iterator[bytes]:
    """Each record's data. At a truncated tail (a writer still at work) or a broken frame it stops, and says where in
    `problems`: the records before it are kept, and the user hears that the file was not read to its end."""
    data = path.read_bytes()
    offset = count = 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header) if len(header) == 8 else (None,)
        crc = struct.unpack("<I", data[offset + 8 : offset + 12])[0] if offset + 12 <= len(data) else None
        end = offset + 12 + (length or 0) + 4
        if length is None or crc != masked_crc32c(header) or end > len(data):
            if problems is not None:
                problems.append(
                    f"{path.name} was read up to byte {offset:,} of {len(data):,} ({count:,} records): the rest is "
                    "damaged, or was still being written"
                )
            return
        yield data[offset + 12 : offset + 12 + length]
        offset, count = end, count + 1


def varint(data: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a message: ints for varints and fixed fields, bytes otherwise."""
    offset = 0
    while offset < len(data):
        tag, offset = varint(data, offset)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, offset = varint(data, offset)
        elif wire == 1:
            value, offset = int.from_bytes(data[offset : offset + 8], "little"), offset + 8
        elif wire == 2:
            length, offset = varint(data, offset)
            value, offset = data[offset : offset + length], offset + length
        elif wire == 5:
            value, offset = int.from_bytes(data[offset : offset + 4], "little"), offset + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def as_double(bits: int) -> float:
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]


def as_float(bits: int) -> float:
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def signed(value: int) -> int:
    """A varint holding a negative int64 is its two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value
