"""A small HTTP file server on 127.0.0.1 for download tests, with switchable misbehaviour."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does; tests change it between downloads."""

    status: int | None = None  # answer every request with this error status
    drop_after: int | None = None  # cut the first body after this many bytes (once)
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    omit_length: bool = False  # send no Content-Length (the body ends when the connection closes)
    wrong_range: bool = False  # answer Range requests with 206 and the range from byte 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class FileServer:
    """Serves ``files`` (name -> bytes) at ``url/<name>`` from a background thread."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        behaviour = self.behaviour
        range_header = handler.headers.get("Range")
        with self._lock:
            behaviour.requests.append((handler.path, range_header))
            drop_after, behaviour.drop_after = behaviour.drop_after, None
        if behaviour.status is not None:
            handler.send_error(behaviour.status)
            return
        data = self.files.get(handler.path.lstrip("/"))
        if data is None:
            handler.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not behaviour.ignore_range:
            start = 0 if behaviour.wrong_range else int(match.group(1))
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if not behaviour.omit_length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if drop_after is not None:
            handler.wfile.write(body[:drop_after])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)

    def range_requests(self) -> list[str]:
        return [r for _, r in self.behaviour.requests if r]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
