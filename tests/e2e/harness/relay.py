"""Joins stdin/stdout to a TCP connection: QEMU's `guestfwd=…-cmd:` runs one per guest
connection, so a guest on a restricted network reaches exactly one host service."""

import os
import selectors
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    conn = socket.create_connection((host, port))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "in")
    sel.register(conn, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(0, 65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    sel.unregister(0)
                    continue
                conn.sendall(data)
            else:
                data = conn.recv(65536)
                if not data:
                    return
                os.write(1, data)


if __name__ == "__main__":
    main()
