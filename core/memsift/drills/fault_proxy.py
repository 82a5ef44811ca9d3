"""A fault-injecting HTTP proxy on 127.0.0.1, for the provider fault drill.

:class:`FaultProxy` forwards each request to an upstream server (a provider's fake API) and
relays the answer, unless a :class:`Fault` is scripted: then it answers the fault instead,
and counts it (:attr:`FaultProxy.delivered`). A fault is an HTTP status with headers and a
body (``action="status"``), a hang that holds the connection without answering
(``"hang"``), a reset connection (``"reset"``: ``SO_LINGER`` 0 and close, so the client gets
an RST), the upstream's real answer cut in half (``"malformed"``), or the real answer passed
through the proxy's ``mutate`` function (``"mutate"``: a wrong count, index, dimension or
shape, whatever the target's function makes of it).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

#: Request headers not passed upstream (hop-by-hop, or set again by the proxy).
_SKIP_REQUEST = frozenset({"host", "connection", "keep-alive", "content-length", "accept-encoding"})
#: Response headers not relayed (the proxy frames the body itself).
_SKIP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
    }
)


@dataclass(frozen=True)
class Fault:
    """A scripted fault (see the module docstring); ``name`` is what it is counted as."""

    name: str
    action: Literal["status", "hang", "reset", "malformed", "mutate"] = "status"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    #: the body of a status fault; None: a JSON error naming the fault
    body: str | None = None
    content_type: str = "application/json"
    #: seconds a hang holds the connection (ended early by :meth:`FaultProxy.release`)
    hang: float = 5.0
    #: the kind handed to ``mutate``
    mutation: str = ""


class FaultProxy:
    """The proxy in front of ``upstream`` (a base URL such as ``http://127.0.0.1:PORT/v1``).

    Use it as a context manager (it serves from a thread until closed). :attr:`base_url` is
    ``upstream`` with the proxy's port; :meth:`script` queues faults, :meth:`clear` drops
    them; :attr:`delivered` counts faults answered, :attr:`forwarded` requests relayed.
    """

    def __init__(self, upstream: str, mutate: Callable[[str, Any], Any] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.mutate = mutate
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._always: Fault | None = None
        self._released = threading.Event()
        self.delivered = 0
        self.forwarded = 0
        self.by_name: dict[str, int] = {}
        self.in_flight = 0
        self._last = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def script(self, fault: Fault, *, times: int | None = None) -> None:
        """Answer the next ``times`` requests with ``fault``; every request if None."""
        with self._lock:
            if times is None:
                self._always = fault
            else:
                self._queue.extend([fault] * times)

    def clear(self) -> None:
        """Forward every request from now on."""
        with self._lock:
            self._queue.clear()
            self._always = None

    def settle(self, quiet: float, limit: float = 10.0) -> int:
        """Wait until no request is in flight and none came for ``quiet`` seconds (at most
        ``limit`` seconds); the number of requests that came meanwhile."""
        start = self.delivered + self.forwarded
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self._lock:
                idle = self.in_flight == 0 and time.monotonic() - self._last >= quiet
            if idle:
                break
            time.sleep(0.02)
        return self.delivered + self.forwarded - start

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self._last = time.monotonic()

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._last = time.monotonic()

    def release(self) -> None:
        """End every pending hang now."""
        self._released.set()

    def close(self) -> None:
        self.clear()
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def _next(self) -> Fault | None:
        with self._lock:
            fault = self._queue.popleft() if self._queue else self._always
            if fault is None:
                self.forwarded += 1
            else:
                self.delivered += 1
                self.by_name[fault.name] = self.by_name.get(fault.name, 0) + 1
            return fault

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The upstream's answer to a request: status, headers, body."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            sent = [(k, v) for k, v in headers if k.lower() not in _SKIP_REQUEST]
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{self.upstream_host}:{self.upstream_port}")
            for key, value in sent:
                conn.putheader(key, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            data = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _SKIP_RESPONSE]
            return answer.status, kept, data
        finally:
            conn.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            proxy._enter()
            try:
                self._answer()
            finally:
                proxy._leave()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._next()
            if fault is None:
                self._relay(*proxy.forward(self.command, self.path, self.headers.items(), body))
            elif fault.action == "reset":
                self._reset()
            elif fault.action == "hang":
                proxy._released.wait(fault.hang)
                self._reset()
            elif fault.action == "status":
                text = fault.body if fault.body is not None else _error_body(fault)
                self._send(
                    fault.status, list(fault.headers.items()), text.encode(), fault.content_type
                )
            else:
                status, headers, data = proxy.forward(
                    self.command, self.path, self.headers.items(), body
                )
                if fault.action == "malformed":
                    self._send(200, headers, data[: max(1, len(data) // 2)], "application/json")
                else:
                    self._send(status, headers, _mutated(proxy, fault, data), "application/json")

        def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self._send(status, headers, data, None)

        def _send(
            self,
            status: int,
            headers: list[tuple[str, str]],
            data: bytes,
            content_type: str | None,
        ) -> None:
            self.send_response(status)
            for key, value in headers:
                if content_type is not None and key.lower() == "content-type":
                    continue
                self.send_header(key, value)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reset(self) -> None:
            """Close the connection with an RST (linger on, timeout 0), answering nothing."""
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass
            self.wfile = io.BytesIO()
            self.close_connection = True

    return Handler


def _error_body(fault: Fault) -> str:
    return json.dumps({"error": {"message": f"injected fault {fault.name}", "type": "fault"}})


def _mutated(proxy: FaultProxy, fault: Fault, data: bytes) -> bytes:
    if proxy.mutate is None:
        return data
    try:
        answer = json.loads(data)
    except ValueError:
        return data
    return json.dumps(proxy.mutate(fault.mutation, answer)).encode()


__all__ = ["Fault", "FaultProxy"]
