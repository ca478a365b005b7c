"""One peer holding half-open HTTP connections (slowloris).

Usage: half_open.py PORT N. Opens N connections to 127.0.0.1:PORT, sends each a request line and
headers without the blank line that ends them, prints how many it opened, and holds them all until
its standard input closes. A connection may wait in the service's listen backlog; connect waits up
to 120 s for it.
"""

import socket
import sys

HALF = (
    b"POST /v1/key-sets/id/sign/jwt HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\n"
)


def main() -> None:
    port, n = int(sys.argv[1]), int(sys.argv[2])
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        s.sendall(HALF)
        held.append(s)
    print(len(held), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
