"""The user's code of the README example: a tiny append-only log on `kv.io.Io`
(the README calls this module `mylog`)."""

import posixpath
import struct
import zlib

from kv.io import File, Io, read_exact


def create(io: Io, path: str) -> File:  # a new, empty log whose name is durable
    log = io.open(path, "x").result()
    io.sync_dir(posixpath.dirname(path)).result()
    return log


def append(io: Io, log: File, offset: int, record: bytes) -> int:  # crc32, length, record
    body = struct.pack("<I", len(record)) + record
    io.write(log, offset, struct.pack("<I", zlib.crc32(body)) + body).result()
    io.sync(log).result()  # acknowledged only once durable
    return offset + 4 + len(body)


def recover(io: Io, log: File) -> list[bytes]:  # every record before the first torn one
    data, records, offset = read_exact(io, log, 0, io.size(log).result()), [], 0
    while offset + 8 <= len(data):
        crc, length = struct.unpack_from("<II", data, offset)
        if zlib.crc32(data[offset + 4 : offset + 8 + length]) != crc:  # short or damaged
            break  # a torn or unfinished record ends the log
        records.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return records
