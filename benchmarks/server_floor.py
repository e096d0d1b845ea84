"""The fastest a durable SET server can be in this Python: what `kv serve` is measured against.

    python benchmarks/server_floor.py asyncio|epoll PORT FILE

A floor server does only the work no durable server can skip: it reads the requests,
appends them to FILE, runs one write and one `fdatasync` per turn of its loop for every
connection that sent bytes in that turn (group commit, as `kv serve` and redis
`appendfsync always` do), and only then answers `+OK` once per command. It parses
nothing (it counts `*3\\r\\n`, the header of redis-benchmark's `SET key value`) and
keeps no index, so it answers SETs only, and only redis-benchmark's. `asyncio` runs on
the event loop `kv serve` uses (one `asyncio.Protocol` per connection); `epoll` is a
bare `select.epoll` loop, the least Python a loop can run per request.

It is a measuring device, not a server: it counts headers per read (one split across
two reads would lose a reply; redis-benchmark's 140-byte SETs never are), keeps what
it reads in lists until the turn ends, and sends replies with a plain `sendall` (a
few bytes per client: the socket buffer never fills).

`bench_server.py --floor` runs both beside `kv serve` and redis in one run: the gap
between `asyncio` and redis is the event loop's own cost, the gap between `kv` and
`asyncio` is the protocol, the command and the store.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import sys

SET_HEADER = b"*3\r\n"


class _Window:
    """The requests of one turn: their bytes, and each connection's count of commands."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data: list[bytes] = []
        self.waiting: list[tuple[asyncio.Transport | socket.socket, int]] = []

    def add(self, reply_to: asyncio.Transport | socket.socket, data: bytes) -> None:
        self.data.append(data)
        self.waiting.append((reply_to, data.count(SET_HEADER)))

    def commit(self) -> None:
        """One write and one fdatasync for the window, then every reply."""
        data, waiting, self.data, self.waiting = self.data, self.waiting, [], []
        if not data:
            return
        os.write(self.fd, b"".join(data))
        os.fdatasync(self.fd)
        for reply_to, count in waiting:
            if isinstance(reply_to, socket.socket):
                reply_to.sendall(b"+OK\r\n" * count)
            else:
                reply_to.write(b"+OK\r\n" * count)


def serve_asyncio(port: int, window: _Window) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        scheduled = False

        def commit() -> None:
            nonlocal scheduled
            scheduled = False
            window.commit()

        class Connection(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                nonlocal scheduled
                window.add(self.transport, data)
                if not scheduled:
                    scheduled = True
                    loop.call_soon(commit)

        await loop.create_server(Connection, "127.0.0.1", port, reuse_address=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_epoll(port: int, window: _Window) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=512, reuse_port=False)
    listener.setblocking(False)
    poll = select.epoll()
    poll.register(listener.fileno(), select.EPOLLIN)
    clients: dict[int, socket.socket] = {}
    while True:
        for fd, _ in poll.poll():
            if fd == listener.fileno():
                client, _ = listener.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                clients[client.fileno()] = client
                poll.register(client.fileno(), select.EPOLLIN)
                continue
            data = clients[fd].recv(1 << 16)
            if data:
                window.add(clients[fd], data)
            else:
                poll.unregister(fd)
                clients.pop(fd).close()
        window.commit()


def main(argv: list[str]) -> int:
    loop, port, path = argv
    window = _Window(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    (serve_asyncio if loop == "asyncio" else serve_epoll)(int(port), window)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
