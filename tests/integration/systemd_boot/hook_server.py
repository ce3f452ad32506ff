"""The model server an on_publish hook tells about a publish: answers 200
"ok" to every GET and POST on ADDR:PORT and prints each request line, so
the journal of the unit running it shows who reached it.

  hook_server.py ADDR PORT
"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    do_GET = _ok
    do_POST = _ok

    def log_message(self, fmt: str, *args) -> None:
        print(f"hook_server: {self.client_address[0]} {self.requestline}", flush=True)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
