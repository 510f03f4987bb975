"""Faults the loopback mirror can inject, by path, for the fault suite (tests/test_faults.py) and the
crash tests: what a flaky publisher does to a crawl.

``MirrorServer.fault(path, Fault(...))`` makes the next ``times`` requests for ``path`` (all of them
when ``times`` is None) go wrong in one of these ways; after that the path is served normally again::

    Fault.burst(503, times=2)      # two 503s, then the document: a burst within the retry budget
    Fault.burst(500)               # 500 for ever
    Fault.reset()                  # the connection is reset (TCP RST) before any response
    Fault.slow(5.0)                # the answer comes after 5 s (more than a test's DOWNLOAD_TIMEOUT)
    Fault.short_body(1000)         # the real headers (Content-Length of the whole), then 1000 bytes, then close
    Fault.redirect("/www.cms.gov/x")  # 302 to a location (itself: a redirect loop)
    Fault.answer(200, {"Content-Type": "text/html"}, b"<html>...")  # any answer, no conditional GET

Unlike ``MirrorServer.override`` (a fixed answer for as long as it is set), a fault counts the requests
it spoils, so "a 503 burst that recovers" is one line, and it can act on the socket (reset, truncate,
delay). Every spoiled request is still recorded in ``MirrorServer.requests`` (status 0 for a reset).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policysync.mirror import MirrorServer

__all__ = ["Fault"]

_CONDITIONAL = ("if-none-match", "if-modified-since")


@dataclass
class Fault:
    """One way to spoil the requests for a path (module docstring). Build with the class methods."""

    kind: str  # "answer" | "reset" | "slow" | "short_body"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    keep: int = 0  # short_body: how many body bytes are sent
    times: int | None = None  # how many requests it spoils; None: every one
    spoiled: int = 0  # requests spoiled so far (counted when they arrive)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def answer(cls, status: int, headers: dict[str, str], body: bytes, *, times: int | None = None) -> Fault:
        return cls("answer", status=status, headers=dict(headers), body=body, times=times)

    @classmethod
    def burst(cls, status: int, *, times: int | None = None) -> Fault:
        """``status`` with a short text body, ``times`` times (None: for ever)."""
        text = f"{status} from the policysync mirror (fault injected by a test)\n".encode()
        return cls.answer(status, {"Content-Type": "text/plain; charset=utf-8"}, text, times=times)

    @classmethod
    def redirect(cls, location: str, *, status: int = 302, times: int | None = None) -> Fault:
        return cls.answer(status, {"Location": location, "Content-Type": "text/plain; charset=utf-8"}, b"",
                          times=times)

    @classmethod
    def reset(cls, *, times: int | None = None) -> Fault:
        return cls("reset", times=times)

    @classmethod
    def slow(cls, seconds: float, *, times: int | None = None) -> Fault:
        return cls("slow", delay=seconds, times=times)

    @classmethod
    def short_body(cls, keep: int, *, times: int | None = None) -> Fault:
        return cls("short_body", keep=keep, times=times)

    def release(self) -> None:
        """End the wait of requests a slow fault is holding (``MirrorServer.clear_fault`` does)."""
        self._released.set()

    def take(self) -> bool:
        """Whether this request is one to spoil (and count it)."""
        with self._lock:
            if self.times is not None and self.spoiled >= self.times:
                return False
            self.spoiled += 1
            return True

    def serve(self, handler: BaseHTTPRequestHandler, mirror: MirrorServer, *, with_body: bool) -> None:
        """Answer ``handler``'s request the spoiled way. A client that went away meanwhile is no error."""
        headers = dict(handler.headers.items())
        try:
            if self.kind == "reset":
                mirror._record(handler.command, handler.path, headers, 0)
                _reset(handler)
                return
            if self.kind == "answer":
                mirror._record(handler.command, handler.path, headers, self.status)
                _send(handler, self.status, self.headers, self.body if with_body else b"")
                return
            if self.kind == "slow":
                self._released.wait(self.delay)
            else:  # a body cut short is a whole body to begin with, never a 304
                headers = {k: v for k, v in headers.items() if k.lower() not in _CONDITIONAL}
            status, out, body = mirror._respond(handler.command, handler.path, headers)
            if self.kind == "short_body":
                out = {**out, "Content-Length": str(len(body))}
                _send(handler, status, out, body[: self.keep] if with_body else b"")
                handler.close_connection = True
                return
            _send(handler, status, out, body if with_body else b"")
        except OSError:
            handler.close_connection = True  # the crawler timed out and hung up: nothing to answer


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if not any(k.lower() == "content-length" for k in headers):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)
    handler.wfile.flush()


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection with an RST (SO_LINGER 0) instead of a FIN: "connection reset by peer"."""
    conn: socket.socket = handler.connection
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    handler.close_connection = True
