"""Hostile clients on loopback, for tests and benches: a swarm of asyncio connections, each kind
from source addresses of its own (127.x.y.z), bounded by a duration and stopping by itself.

- slowloris: sends `EHLO slow.example` a byte a second, for ever; when the gateway closes it,
  reconnects a second later (the classic tool re-creates dead sockets on its next round);
- tls_stall: connects to the implicit-TLS port and sends half a ClientHello, then nothing;
- long_line: sends 10 MB lines without a line end, over and over;
- endless_rcpt: EHLO, MAIL, then RCPT TO after RCPT TO, pipelined;
- endless_pipeline: NOOP after NOOP, pipelined as fast as the socket takes them.

Every client reads (and drops) what the gateway says, to see when it is closed.
"""

import asyncio
import resource
import threading
import time

KINDS = ("slowloris", "tls_stall", "long_line", "endless_rcpt", "endless_pipeline")


def source(kind_index, i):
    """A loopback source address of its own for client `i` of a kind."""
    return f"127.{100 + kind_index}.{(i // 250) % 250}.{i % 250 + 1}"


class Swarm:
    def __init__(self, port, tls_port=None, duration=30.0, **counts):
        self.port, self.tls_port, self.duration = port, tls_port, duration
        self.counts = {k: counts.get(k, 0) for k in KINDS}
        self.stats = {k: {"connects": 0, "closed_by_server": 0, "bytes": 0, "refused": 0} for k in KINDS}
        self.thread = threading.Thread(target=self._run, daemon=True)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(self.duration + 30)

    def stop(self):
        """Ends every client now (their connections are reset)."""
        loop = getattr(self, "loop", None)
        if loop is not None and self.thread.is_alive():
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in self.tasks])
        self.thread.join(30)

    def _run(self):
        asyncio.run(self._main())

    async def _main(self):
        self.end = time.monotonic() + self.duration
        self.loop = asyncio.get_running_loop()
        self.tasks = []
        for ki, kind in enumerate(KINDS):
            for i in range(self.counts[kind]):
                self.tasks.append(asyncio.create_task(self._client(kind, source(ki, i))))
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, kind, src):
        st = self.stats[kind]
        port = self.tls_port if kind == "tls_stall" else self.port
        while time.monotonic() < self.end:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), timeout=5)
            except (OSError, asyncio.TimeoutError):
                st["refused"] += 1
                await asyncio.sleep(1)
                continue
            st["connects"] += 1
            drain = asyncio.create_task(self._drain(r, st))
            try:
                await asyncio.wait_for(self._talk(kind, w, st), timeout=max(0.1, self.end - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            except (OSError, ConnectionError):
                pass
            closed = drain.done()
            drain.cancel()
            w.transport.abort()
            if closed:
                st["closed_by_server"] += 1
            await asyncio.sleep(1)

    async def _drain(self, r, st):
        # Read (and drop) whatever the gateway says, until it closes.
        while await r.read(65536):
            pass

    async def _talk(self, kind, w, st):
        async def send(b):
            w.write(b)
            await w.drain()
            st["bytes"] += len(b)
        if kind == "slowloris":
            for b in b"EHLO slow.example\r\n" * 1000:
                await send(bytes([b]))
                await asyncio.sleep(1)
        elif kind == "tls_stall":
            await send(bytes.fromhex("16030100a5010000a10303") + b"\x00" * 16)
            await asyncio.sleep(3600)
        elif kind == "long_line":
            chunk = b"A" * (1 << 20)
            while True:
                for _ in range(10):
                    await send(chunk)
                await send(b"\r\n")
        elif kind == "endless_rcpt":
            await send(b"EHLO r.example\r\nMAIL FROM:<a@r.example>\r\n")
            n = 0
            while True:
                await send(b"".join(b"RCPT TO:<u%d@example.test>\r\n" % (n + i) for i in range(100)))
                n += 100
        elif kind == "endless_pipeline":
            while True:
                await send(b"NOOP\r\n" * 1000)
