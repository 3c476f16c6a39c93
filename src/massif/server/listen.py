"""Listen on a socket and serve an app with uvicorn; warn when beyond this machine; the host
names a server answers to (``Hosts``: the ``Host`` header check against DNS rebinding)."""

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
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def canonical_host(name: str) -> str:
    """A host name as compared: lower case, no final dot, an IP address in its usual form
    (IPv6 in brackets, as in a ``Host`` header)."""
    name = name.strip().lower().rstrip(".")
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return name
    return f"[{ip}]" if ip.version == 6 else str(ip)


def host_name(header: str) -> str | None:
    """The host name of a ``Host`` header (its port left out), or ``None`` when the header is
    not ``name``, ``name:port`` or ``[IPv6]:port``."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        name, rest = (header[:end + 1], header[end + 1:]) if end > 0 else ("", "")
    else:
        name, colon, port = header.partition(":")
        rest = colon + port
    if not name or (rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit())):
        return None
    return canonical_host(name)


def is_any_address(host: str) -> bool:
    """Whether ``host`` is the wildcard address (``0.0.0.0``, ``::``): every interface."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


class Hosts:
    """The host names a server listening on ``host`` answers to, in the ``Host`` header.

    A page of another site can make its own name resolve to this machine (DNS rebinding) and
    then read and post to the server as if it were same-origin; its requests still carry its
    own name in ``Host``, so only the names the server is reached by are served: the loopback
    names (127.0.0.1, localhost, [::1]) and ``host``; on the wildcard address (``0.0.0.0``,
    ``::``) also any IP address (a page named by an IP address is that server's own) and this
    machine's name. Any port: a tunnel (``ssh -L 9000:localhost:8000``) changes it."""

    def __init__(self, host: str = DEFAULT_HOST) -> None:
        self.host = host
        self.any_address = is_any_address(host)
        names = [*LOOPBACK_NAMES, canonical_host(host)]
        if self.any_address:
            names.append(canonical_host(socket.gethostname()))
        self.names = tuple(dict.fromkeys(n for n in names if not is_any_address(n)))

    def accepts(self, header: str | None) -> bool:
        name = host_name(header) if header is not None else None
        if name is None:
            return False
        if name in self.names:
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
        return False

    def refusal(self, header: str | None) -> str:
        """Why a request with this ``Host`` header is refused, in one line."""
        listed = ", ".join(self.names) + (" or any IP address" if self.any_address else "")
        given = ("the request has no Host header" if header is None
                 else f"the host {short(header, 60)} is not one of this server's names")
        return (f"{given}: it answers to {listed} (any port), so that other sites cannot "
                "read it (DNS rebinding); to open it under another name, serve it with "
                "massif serve --host NAME")


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
    built_for = getattr(getattr(app, "state", None), "hosts", None)
    if built_for is not None and canonical_host(built_for.host) != canonical_host(host):
        log.warning("the app was built for host %s (create_app(host=...)), so it answers "
                    "only to %s", built_for.host, ", ".join(built_for.names))
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
