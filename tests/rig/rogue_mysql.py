"""A server impersonating a database, for the tests of where the master password may go.

It speaks the start of the MySQL client/server protocol as a real server does (a protocol 10
handshake offering mysql_native_password, without TLS), then answers the client's handshake
with an AuthSwitchRequest to ``mysql_clear_password``: a client that obeys sends the password
in the next packet. Everything a client sends is recorded, so a test can say whether a
password reached it, and how many connections were made at all.
"""

import os
import socket
import struct
import threading
from dataclasses import dataclass, field

from tests.rig.emulator import free_port

# Capability flags (MySQL client/server protocol): LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41,
# TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH, PLUGIN_AUTH_LENENC_CLIENT_DATA. No SSL.
_CAPABILITIES = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000 | 0x200000
_UTF8MB4_GENERAL_CI = 45


def _packet(sequence: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


def _handshake() -> bytes:
    scramble = os.urandom(20)
    return (
        b"\x0a"  # protocol version 10
        + b"8.0.36-impersonator\x00"
        + struct.pack("<I", 7)  # connection id
        + scramble[:8]
        + b"\x00"
        + struct.pack("<H", _CAPABILITIES & 0xFFFF)
        + bytes([_UTF8MB4_GENERAL_CI])
        + struct.pack("<H", 0x0002)  # status: autocommit
        + struct.pack("<H", _CAPABILITIES >> 16)
        + bytes([21])
        + b"\x00" * 10
        + scramble[8:]
        + b"\x00"
        + b"mysql_native_password\x00"
    )


@dataclass
class RogueMysqlServer:
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    connections: int = 0
    received: list[bytes] = field(default_factory=list)
    _socket: socket.socket | None = field(default=None, repr=False)

    def start(self) -> "RogueMysqlServer":
        self._socket = socket.create_server((self.host, self.port))
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def got(self, secret: str) -> bool:
        """Whether ``secret`` reached this server in any packet."""
        return any(secret.encode() in packet for packet in self.received)

    def _serve(self) -> None:
        assert self._socket is not None
        while True:
            try:
                client, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._converse, args=(client,), daemon=True).start()

    def _converse(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            try:
                client.sendall(_packet(0, _handshake()))
                response = self._read(client)  # handshake response: user name, scramble, plugin
                sequence = response[0] + 1
                client.sendall(_packet(sequence, b"\xfe" + b"mysql_clear_password\x00"))
                self._read(client)  # the clear-text password, from a client that obeys
                client.sendall(_packet(sequence + 2, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied"))
            except (OSError, ConnectionError):
                return

    def _read(self, client: socket.socket) -> bytes:
        header = self._exactly(client, 4)
        length = int.from_bytes(header[:3], "little")
        payload = self._exactly(client, length)
        self.received.append(payload)
        return bytes([header[3]]) + payload

    @staticmethod
    def _exactly(client: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = client.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed the connection")
            data += chunk
        return data
