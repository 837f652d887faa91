"""Ports on this machine: is one free, does something answer on it, pick one.

One place for what ``up``, its embedded servers, the tests and the benchmarks
all need.
"""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a stopped server in TIME_WAIT do
        # not keep the next one from listening on the same port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def answers(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pick_port(preferred: int, host: str = HOST) -> int:
    """``preferred`` when it is free, else a free port the system chooses."""
    return preferred if port_is_free(preferred, host) else free_port(host)


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now, chosen by the system."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
