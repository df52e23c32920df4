#!/usr/bin/env python3
"""A TLS front for moto, so the first-event figure can include what a deployed function pays on
its first AWS call: a TLS handshake (aws-lc's first randomness, its entropy seeding) and the
parsing of a full system root bundle.

    tls_relay.py --upstream HOST:PORT --dir DIR
    # -> prints "listening on 127.0.0.1:PORT CAFILE" once ready

It makes a self-signed certificate for 127.0.0.1 with `openssl` in DIR, writes DIR/roots.pem
(the system bundle plus that certificate, for SSL_CERT_FILE) and relays bytes both ways
between each TLS client and a plain TCP connection to the upstream.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def make_cert(d: str) -> tuple[str, str, str]:
    key, cert, roots = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "roots.pem"))
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"],
                       check=True, capture_output=True)
    with open(roots, "w", encoding="utf-8") as out:
        for b in SYSTEM_BUNDLES:
            if os.path.exists(b):
                with open(b, encoding="utf-8") as f:
                    out.write(f.read())
                break
        with open(cert, encoding="utf-8") as f:
            out.write(f.read())
    return key, cert, roots


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client: socket.socket, ctx: ssl.SSLContext, upstream: tuple[str, int]) -> None:
    try:
        tls = ctx.wrap_socket(client, server_side=True)
        up = socket.create_connection(upstream)
    except (OSError, ssl.SSLError):
        client.close()
        return
    tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pump, args=(up, tls), daemon=True).start()
    pump(tls, up)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    os.makedirs(args.dir, exist_ok=True)
    key, cert, roots = make_cert(args.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(f"listening on 127.0.0.1:{srv.getsockname()[1]} {roots}", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, ctx, (host, int(port))), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
