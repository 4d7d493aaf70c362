"""``matdiff serve``: bind, say where, run the app under uvicorn until Ctrl-C."""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import sys

EXTRA = "pip install 'matdiff[web]'"
MAX_WORKERS = 32
MAX_SECONDS = 3600.0


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int | None = None,
          seconds: float | None = None) -> int:
    """Run the web app; the exit status (2 for a missing extra or an address in use).
    ``seconds`` is one request's time limit (Settings.seconds)."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        return _fail(f"matdiff serve needs the web extra ({' and '.join(missing)} missing): "
                     f"{EXTRA}")
    if not 0 <= port <= 65535:
        return _fail(f"--port must be from 0 to 65535, not {port}")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        return _fail(f"--workers must be from 1 to {MAX_WORKERS}, not {workers}")
    if seconds is not None and not 0.1 <= seconds <= MAX_SECONDS:
        return _fail(f"--seconds must be from 0.1 to {MAX_SECONDS:g}, not {seconds:g}")
    try:
        sock = _bound(host, port)
    except OSError as err:
        return _fail(f"cannot listen on {host} port {port}: {err.strerror or err}; pick "
                     "another with --port (0 takes a free one) or --host")
    import uvicorn

    from .app import LOOPBACK_HOSTS, create_app
    from .schema import Settings

    loopback = _is_loopback(host)
    if not loopback:
        print(f"matdiff serve: warning: listening on {host}, so other machines can reach this "
              "server and use its CPU (the default --host 127.0.0.1 keeps it to this one)",
              file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    settings = Settings() if seconds is None else Settings(seconds=seconds,
                                                             grace=max(2.0, seconds / 2))
    app = create_app(workers, settings,
                     allowed_hosts=LOOPBACK_HOSTS + (host,) if loopback else ("*",),
                     ready=lambda: print(f"matdiff serve: {url}  (Ctrl-C stops it)",
                                         flush=True))
    if not app.state.katex:
        print("matdiff serve: note: KaTeX is not in this installation (it is fetched with npm "
              "when matdiff is built), so the page shows math as Unicode text",
              file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C again once it has shut down
        pass
    print("matdiff serve: stopped", file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    print(f"matdiff: error: {message}", file=sys.stderr)
    return 2


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not _is_ip(host):
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback
