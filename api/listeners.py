"""One listening socket per worker process (``SO_REUSEPORT``), so the kernel balances connections.

uvicorn's worker supervisor binds one socket and hands it to every worker; the workers then race
to ``accept`` on it, and the first one awake takes every connection waiting — a client that opens
its keep-alive pool at once (a send-path service, a load test) lands entirely on one worker, and
the other workers idle. With ``SO_REUSEPORT`` each worker listens on a socket of its own and the
kernel spreads new connections over them by a hash of the client's address and port.

Guarantees:
- ``worker_listener`` refuses (``OSError``, errno ``EADDRINUSE``) an address something else
  already listens on, as a plain bind would: ``SO_REUSEPORT`` never lets a second service share
  the port unnoticed;
- the socket it returns stays bound (reserving the address) but never listens; each worker
  process it is handed to receives, in its place, a new socket bound to the same address, which
  the worker's server then listens on;
- where the platform has no ``SO_REUSEPORT``, ``worker_listener`` returns ``None`` and the
  caller keeps uvicorn's shared socket.
"""

from __future__ import annotations

import socket
from typing import Any, TypeVar

_HAS_REUSEPORT = hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


S = TypeVar("S", bound=socket.socket)


def _bound(kind: type[S], family: int, host: str, port: int, *, reuse_port: bool) -> S:
    sock = kind(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def rebind_in_worker(family: int, host: str, port: int) -> socket.socket:
    """A worker's own socket on the address (what a ``WorkerListener`` becomes when unpickled)."""
    sock = _bound(socket.socket, family, host, port, reuse_port=True)
    sock.set_inheritable(True)
    return sock


class WorkerListener(socket.socket):
    """The supervisor's bound, never-listening socket; in a worker it is a fresh socket.

    Worker processes are spawned and receive their sockets by pickling: this class pickles to a
    call of ``rebind_in_worker`` for its address instead of to a duplicate of itself.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return (rebind_in_worker, (int(self.family), host, port))


def worker_listener(host: str, port: int) -> WorkerListener | None:
    """The address ``host:port`` reserved for workers that each listen on it (see the module)."""
    if not _HAS_REUSEPORT:
        return None
    family = _family(host)
    # a plain bind first: EADDRINUSE if anything (another service's workers too) holds the address
    _bound(socket.socket, family, host, port, reuse_port=False).close()
    return _bound(WorkerListener, family, host, port, reuse_port=True)
