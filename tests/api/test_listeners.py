"""Per-worker listening sockets: the address is reserved, refused when taken, rebound per worker."""

from __future__ import annotations

import errno
import pickle
import socket

import pytest

from api.listeners import WorkerListener, worker_listener

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="the platform has no SO_REUSEPORT"
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_something_listens_on_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as refused:
            worker_listener("127.0.0.1", taken.getsockname()[1])
    assert refused.value.errno == errno.EADDRINUSE


def test_a_second_service_cannot_join_the_workers_of_a_first() -> None:
    port = _port()
    first = worker_listener("127.0.0.1", port)
    assert first is not None
    worker = pickle.loads(pickle.dumps(first))
    try:
        worker.listen()
        with pytest.raises(OSError) as refused:
            worker_listener("127.0.0.1", port)
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        worker.close()
        first.close()


def test_each_worker_gets_its_own_socket_on_the_reserved_address() -> None:
    port = _port()
    reserved = worker_listener("127.0.0.1", port)
    assert isinstance(reserved, WorkerListener)
    workers = [pickle.loads(pickle.dumps(reserved)) for _ in range(3)]
    try:
        for w in workers:
            assert type(w) is socket.socket  # a plain socket in the worker, not a WorkerListener
            assert w.getsockname() == ("127.0.0.1", port)
            assert w.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            w.listen()
        assert len({w.fileno() for w in workers} | {reserved.fileno()}) == 4
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # some worker's socket accepts it; the reserved one never listens
    finally:
        for w in workers:
            w.close()
        reserved.close()
