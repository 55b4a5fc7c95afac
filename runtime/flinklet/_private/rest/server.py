"""``RestServer``: the REST app served by uvicorn on a background thread.

    server = RestServer(MiniClusterService(), port=0).start()   # 0: any free port
    print(f"http://{server.host}:{server.port}/overview")
    server.stop()

It binds ``127.0.0.1`` unless told otherwise; :meth:`RestServer.from_configuration` reads
``rest.bind-address`` and ``rest.port`` (Flink's keys; 8081 by default).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

from flinklet._private.rest.app import create_app
from flinklet._private.rest.service import ClusterService
from flinklet.common.config_options import RestOptions
from flinklet.common.configuration import Configuration
from flinklet.errors import ClusterError

__all__ = ["RestServer"]

log = logging.getLogger(__name__)

DEFAULT_BIND_ADDRESS = "127.0.0.1"


class RestServer:
    """Serves ``create_app(service)`` on ``host:port`` from a daemon thread."""

    def __init__(
        self,
        service: ClusterService,
        host: str = DEFAULT_BIND_ADDRESS,
        port: int = 8081,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.service = service
        self.host = host
        self._requested_port = port
        self._start_timeout_s = start_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    @classmethod
    def from_configuration(cls, service: ClusterService, conf: Configuration) -> RestServer:
        """``rest.bind-address`` (default 127.0.0.1) and ``rest.port`` (default 8081)."""
        host = conf.get(RestOptions.BIND_ADDRESS) or DEFAULT_BIND_ADDRESS
        return cls(service, host, int(conf.get(RestOptions.PORT)))

    @property
    def port(self) -> int:
        """The port actually bound (the chosen one when constructed with port 0)."""
        if self._port is None:
            raise ClusterError("the REST server is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> RestServer:
        if self._thread is not None:
            return self
        sock = self._bind()
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.service),
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported to start() below
                errors.append(exc)

        self._thread = threading.Thread(target=serve, name="flinklet-rest", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not server.started:
            if errors or not self._thread.is_alive():
                self._close_socket()
                self._thread = None
                cause = errors[0] if errors else None
                raise ClusterError(
                    f"the REST server on {self.host}:{self._port} did not start: {cause}"
                ) from cause
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(
                    f"the REST server on {self.host}:{self._port} did not start within "
                    f"{self._start_timeout_s:g} s"
                )
            time.sleep(0.01)
        log.info("REST API listening on %s", self.url)
        return self

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ClusterError(
                f"cannot resolve rest.bind-address '{self.host}': {exc}; use an IP address "
                f"such as 127.0.0.1"
            ) from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise ClusterError(
                f"cannot bind the REST API to {self.host}:{self._requested_port}: "
                f"{exc.strerror or exc}; set rest.port to a free port (0 picks one)"
            ) from exc
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._server = None
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> RestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
