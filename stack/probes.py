"""Readiness probes speaking each engine's wire protocol over a raw socket.

An open port is not readiness: Cassandra binds early, Redis answers -LOADING while replaying its AOF.
Each probe returns None when the engine answered correctly, otherwise a short reason.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct

from stack.config import HOST

PROBE_TIMEOUT = 2.0

KAFKA_API_VERSIONS = 18
CQL_OPTIONS_V4 = bytes.fromhex("040000000500000000")
CQL_RESPONSE_V4 = 0x84
CQL_OPCODE_SUPPORTED = 0x06
REDIS_PING = b"*1\r\n$4\r\nPING\r\n"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def kafka_api_versions_request(correlation_id: int, client_id: str = "kicau-stack") -> bytes:
    """ApiVersions v0 with request header v1 (api key, version, correlation id, client id)."""
    cid = client_id.encode()
    body = struct.pack(">hhih", KAFKA_API_VERSIONS, 0, correlation_id, len(cid)) + cid
    return struct.pack(">i", len(body)) + body


def parse_kafka_api_versions(payload: bytes, correlation_id: int) -> str | None:
    """Check a v0 response body (after the size prefix): correlation id, error code, the api array."""
    if len(payload) < 10:
        return f"short ApiVersions response ({len(payload)} bytes)"
    got_cid, error_code, count = struct.unpack_from(">ihi", payload, 0)
    if got_cid != correlation_id:
        return f"correlation id {got_cid} != {correlation_id}"
    if error_code != 0:
        return f"ApiVersions error_code {error_code}"
    if count <= 0 or len(payload) < 10 + 6 * count:
        return f"ApiVersions response lists {count} apis in {len(payload)} bytes"
    return None


def probe_kafka(port: int, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> str | None:
    correlation_id = int.from_bytes(os.urandom(3), "big")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(kafka_api_versions_request(correlation_id))
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 0 < size < 1 << 20:
                return f"implausible response size {size}"
            return parse_kafka_api_versions(_recv_exact(sock, size), correlation_id)
    except OSError as exc:
        return _describe(exc)


def parse_cql_header(header: bytes) -> str | None:
    if len(header) != 9:
        return f"short CQL header ({len(header)} bytes)"
    if header[0] != CQL_RESPONSE_V4:
        return f"CQL version byte 0x{header[0]:02x}, wanted 0x{CQL_RESPONSE_V4:02x}"
    if header[4] != CQL_OPCODE_SUPPORTED:
        return f"CQL opcode 0x{header[4]:02x}, wanted SUPPORTED (0x06)"
    return None


def probe_cassandra(port: int, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(CQL_OPTIONS_V4)
            header = _recv_exact(sock, 9)
            problem = parse_cql_header(header)
            if problem is None:
                (length,) = struct.unpack_from(">i", header, 5)
                _recv_exact(sock, length)  # drain the SUPPORTED body so the server sees a clean close
            return problem
    except OSError as exc:
        return _describe(exc)


def probe_redis(port: int, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(REDIS_PING)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        return _describe(exc)
    if reply == b"+PONG\r\n":
        return None
    return f"PING answered {reply.strip().decode(errors='replace')!r}"


def probe_http(port: int, path: str = "/readyz", host: str = HOST, timeout: float = PROBE_TIMEOUT) -> str | None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            return None
        return f"GET {path} -> {resp.status}"
    except (OSError, http.client.HTTPException) as exc:
        return _describe(exc)
    finally:
        conn.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
