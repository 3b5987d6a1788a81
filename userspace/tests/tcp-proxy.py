#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# tcp-proxy.py LISTEN_ADDR:PORT TARGET_ADDR:PORT
# A TCP forwarder standing in for "the network" in recovery tests: kill it
# (SIGKILL) and every connection through it breaks at once, from both
# ends; start it again and new connections get through.
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    lh, lp = sys.argv[1].rsplit(":", 1)
    th, tp = sys.argv[2].rsplit(":", 1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lh, int(lp)))
    ls.listen(16)
    while True:
        c, _ = ls.accept()
        try:
            t = socket.create_connection((th, int(tp)))
        except OSError:
            c.close()
            continue
        for a, b in ((c, t), (t, c)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()
