"""Listen on a socket and serve an app with uvicorn; warn when beyond this machine."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from typing import Any

from ..errors import MassifError, short

log = logging.getLogger("massif.server")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is a one-line ``MassifError``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise MassifError(f"port {short(port)} is not a port number (0 to 65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise MassifError(f"cannot serve on host {short(host)}: {e.strerror}") from None
    except UnicodeError:  # the name cannot be a host name (an empty or 64+ character label)
        raise MassifError(f"cannot serve on host {short(host)}: not a valid host name") from None
    family, _, _, _, address = infos[0]
    # Named TCP, so asyncio sets TCP_NODELAY on every accepted connection (it checks the
    # protocol); with 0, Nagle's algorithm held each response's body back for the client's
    # delayed ACK: 44 ms per request on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise MassifError(f"port {port} on {host} is already in use; stop the other "
                              f"server or choose another port with --port") from None
        raise MassifError(f"cannot serve on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def exposure_warning(host: str) -> str | None:
    """What to tell a user who serves beyond this machine (``None`` on a loopback address)."""
    if is_loopback(host):
        return None
    return (f"warning: serving on {host}, beyond this machine; MASSIF has no authentication, "
            "so anyone who can reach this address can run analyses and read the workspace")


def address(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def run(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
        sock: socket.socket | None = None) -> None:
    """Serve ``app`` on ``host:port`` (127.0.0.1 unless told otherwise) until Ctrl+C.

    Prints the address first. A port in use raises ``MassifError`` with one line; nothing
    listens beyond ``host``. ``sock``: a socket from ``bind`` (bind first, then load the model,
    so a port in use is reported at once)."""
    import uvicorn

    if not logging.getLogger("massif").handlers:  # one line per message on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("massif: %(message)s"))
        logging.getLogger("massif").addHandler(handler)
        logging.getLogger("massif").setLevel(logging.INFO)
    sock = sock or bind(host, port)
    real_port = sock.getsockname()[1]
    warning = exposure_warning(host)
    if warning:
        log.warning("%s", warning)
    print(f"MASSIF is serving on {address(host, real_port)}  (Ctrl+C to stop)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
