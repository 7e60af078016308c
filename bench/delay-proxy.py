#!/usr/bin/env python3
"""A TCP proxy on loopback that holds every chunk sent to the server for a
fixed delay before passing it on (the answers come back at once): each
round trip through it takes that much longer, as on a network between the
gateway and PostgreSQL. This machine's kernel has no netem.

    bench/delay-proxy.py LISTEN_PORT TARGET_HOST:PORT DELAY_MS

One thread per direction of each connection; a chunk waits until its
arrival time plus the delay (time.sleep, precise to tens of microseconds,
where an event loop's timers round to the millisecond). Order is kept.
"""
import queue
import socket
import sys
import threading
import time


def pump(src, dst, delay):
    q = queue.SimpleQueue()

    def read():
        try:
            while True:
                data = src.recv(65536)
                q.put((time.monotonic(), data))
                if not data:
                    return
        except OSError:
            q.put((time.monotonic(), b""))

    def write():
        try:
            while True:
                at, data = q.get()
                wait = at + delay - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            pass

    for f in (read, write):
        threading.Thread(target=f, daemon=True).start()


def main():
    port, target, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, tport = target.rsplit(":", 1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(256)
    while True:
        client, _ = ls.accept()
        server = socket.create_connection((host, int(tport)))
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pump(client, server, delay_ms / 1000.0)
        pump(server, client, 0.0)


if __name__ == "__main__":
    main()
