"""A downstream that misbehaves on a schedule: a TCP proxy on loopback in front of a real sink,
cycling through up (pass-through), down (nothing listens: connections refused), slow (every reply
held back) and reset (each connection is cut with a TCP reset just before the end of data would
reach the sink). Cutting before the final dot, never after, keeps it honest: a message the sink
acknowledged is never one the gateway did not hear acknowledged, so a correct relay delivers
everything exactly once."""

import asyncio
import socket
import struct
import threading
import time

MODES = ("up", "down", "slow", "reset")


class Flappy:
    def __init__(self, port, target_port, period=4.0, slow_s=1.5):
        self.port, self.target, self.period, self.slow_s = port, target_port, period, slow_s
        self.mode = "up"
        self.settled = False
        self.counts = {"connections": 0, "refused_windows": 0, "resets": 0, "slowed_replies": 0}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self._schedule(), self.loop)
        return self

    def settle(self):
        """Up for good from now on."""
        self.settled = True
        asyncio.run_coroutine_threadsafe(self._set("up"), self.loop).result(10)

    def stop(self):
        """Stops listening and ends every connection and the schedule before the loop stops."""
        self.settled = True

        async def close():
            if self.server:
                self.server.close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _listen(self):
        if self.server is None:
            self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port, reuse_address=True)

    async def _set(self, mode):
        self.mode = mode
        if mode == "down" and self.server:
            self.server.close()
            self.server = None
            self.counts["refused_windows"] += 1
        elif mode != "down":
            await self._listen()

    async def _schedule(self):
        i = 0
        while not self.settled:
            await self._set(MODES[i % len(MODES)])
            i += 1
            await asyncio.sleep(self.period)

    async def _conn(self, cr, cw):
        self.counts["connections"] += 1
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            cw.close()
            return

        async def up():  # gateway -> sink
            tail = b""
            while data := await cr.read(65536):
                window = tail + data
                if self.mode == "reset" and b"\r\n.\r\n" in window:
                    # A reset, not a close: the gateway sees the connection break mid-DATA.
                    sock = cw.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.counts["resets"] += 1
                    cw.transport.abort()
                    sw.transport.abort()
                    return
                sw.write(data)
                await sw.drain()
                tail = window[-4:]
            sw.close()

        async def down():  # sink -> gateway
            while data := await sr.read(65536):
                if self.mode == "slow":
                    self.counts["slowed_replies"] += 1
                    await asyncio.sleep(self.slow_s)
                cw.write(data)
                await cw.drain()
            cw.close()

        try:
            await asyncio.gather(up(), down())
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (cw, sw):
                w.transport.abort()
