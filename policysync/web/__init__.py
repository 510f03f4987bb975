"""``policysync serve``: the local review web app (Flask, 127.0.0.1 only). See ``policysync.web.app``."""

from __future__ import annotations

import threading
from types import TracebackType

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from policysync.web.app import create_app

HOST = "127.0.0.1"

__all__ = ["HOST", "AppServer", "create_app"]


class AppServer:
    """Serves a Flask app on 127.0.0.1 in a background thread (port 0 picks a free one)::

    with AppServer(create_app(home)) as server:
        print(server.url)
    """

    def __init__(self, app: Flask, port: int = 0) -> None:
        self.app = app
        self.port = port
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{HOST}:{self._httpd.server_port}"

    def start_listening(self) -> AppServer:
        """Bind the socket (so ``url`` is known) without serving yet."""
        if self._httpd is None:
            self._httpd = make_server(HOST, self.port, self.app, threaded=True)
        return self

    def start(self) -> AppServer:
        """Serve in a background thread."""
        self.start_listening()
        assert self._httpd is not None
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="policysync-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self.start_listening()
        assert self._httpd is not None
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = self._thread = None

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
