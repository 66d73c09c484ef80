"""A hostile box's SFTP server, for sshd's `Subsystem sftp`: the real OpenSSH sftp-server behind a
filter that renames entries in its listings, the way a compromised or malicious box would lie.

No file system can hold a file named `../../escape.txt`, so the box holds a real file named
`HOSTILE-..%2F..%2Fescape.txt` and this filter lists it as `../../escape.txt` (percent-decoded);
everything else (reads, stats, other names) is the real server's answer, byte for byte.

Usage (sshd_config): Subsystem sftp PYTHON hostile_sftp.py /usr/lib/openssh/sftp-server
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from urllib.parse import unquote_to_bytes

SSH_FXP_NAME = 104
PREFIX = b"HOSTILE-"


def read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def rewrite_names(payload: bytes) -> bytes:
    """SSH_FXP_NAME: id, count, then (filename, longname, attrs) per entry; rename HOSTILE- entries."""
    out = bytearray(payload[:9])  # type, id, count
    count = struct.unpack(">I", payload[5:9])[0]
    pos = 9
    for _ in range(count):
        for field in ("filename", "longname"):
            (n,) = struct.unpack(">I", payload[pos:pos + 4])
            text = payload[pos + 4:pos + 4 + n]
            pos += 4 + n
            if text.startswith(PREFIX) and field == "filename":
                text = unquote_to_bytes(text[len(PREFIX):])
            out += struct.pack(">I", len(text)) + text
        start = pos
        (flags,) = struct.unpack(">I", payload[pos:pos + 4])
        pos += 4
        pos += 8 if flags & 0x1 else 0  # size
        pos += 8 if flags & 0x2 else 0  # uid, gid
        pos += 4 if flags & 0x4 else 0  # permissions
        pos += 8 if flags & 0x8 else 0  # atime, mtime
        if flags & 0x80000000:
            (ext,) = struct.unpack(">I", payload[pos:pos + 4])
            pos += 4
            for _ in range(ext * 2):
                (n,) = struct.unpack(">I", payload[pos:pos + 4])
                pos += 4 + n
        out += payload[start:pos]
    return bytes(out + payload[pos:])


def main() -> None:
    server = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def upstream() -> None:  # client → real server, untouched
        try:
            while chunk := os.read(0, 65536):
                write_all(server.stdin.fileno(), chunk)
        finally:
            server.stdin.close()

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while True:
            (n,) = struct.unpack(">I", read_exact(server.stdout.fileno(), 4))
            payload = read_exact(server.stdout.fileno(), n)
            if payload[0] == SSH_FXP_NAME:
                payload = rewrite_names(payload)
            write_all(1, struct.pack(">I", len(payload)) + payload)
    except EOFError:
        pass
    server.wait()


if __name__ == "__main__":
    main()
