"""The guest's downstream route, as qemu's guestfwd runs it once for each connection the guest
opens to 10.0.2.100:25: stdin/stdout (the guest's connection) joined to a TCP port on the host's
loopback (the sink). Exits when both directions have ended."""

import os
import selectors
import socket
import sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ, "in")
sel.register(s, selectors.EVENT_READ, "sock")
open_ends = 2
while open_ends:
    for key, _ in sel.select():
        if key.data == "in":
            data = os.read(0, 65536)
            if data:
                s.sendall(data)
            else:
                sel.unregister(0)
                s.shutdown(socket.SHUT_WR)
                open_ends -= 1
        else:
            data = s.recv(65536)
            if data:
                os.write(1, data)
            else:
                sel.unregister(s)
                open_ends -= 1
                os.close(1)
