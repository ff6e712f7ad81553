"""A small HTTP service for the HTTP data-path tests: it answers every method.

- /base/data/customers: JSON with an email and a card number (for masking);
- /base/data/text: the same as text/plain (masks apply and it is not JSON);
- /base/stream with `Upgrade: echo`: switches protocols (101) and echoes every byte
  back upper-cased until the client closes, as exec and port-forward streams do;
- anything else: the request echoed as JSON (method, path, headers, body).

Listens on 127.0.0.1 on a free port and prints `listening <port>` once ready; with
`CERT KEY` arguments, over TLS.
"""

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        if self.path.startswith("/base/stream") and self.headers.get("Upgrade", "").lower() == "echo":
            self.send_response(101)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "echo")
            self.send_header("X-Saw-Authorization", self.headers.get("Authorization", ""))
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(4096)
                if not data:
                    break
                self.connection.sendall(data.upper())
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if self.path.startswith("/base/data/customers"):
            payload = {"items": [{"name": "Ada", "email": "ada@example.com", "card": "4111111111111111"}]}
            self.send(200, "application/json", json.dumps(payload).encode())
        elif self.path.startswith("/base/data/text"):
            self.send(200, "text/plain", b"ada@example.com 4111111111111111")
        else:
            payload = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
            self.send(200, "application/json", json.dumps(payload).encode())

    def send(self, status, content_type, data):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
if len(sys.argv) == 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
