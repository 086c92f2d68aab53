"""The outside world of the allow-list's tests: one HTTP and one HTTPS
server on the address given, each answering every request with what it
received (its Host, path and credential headers) as JSON.

usage: outside.py ADDRESS CERT KEY [HTTPS_PORT]
Prints "http=PORT https=PORT" once both listen, then serves until killed.
"""

import http.server
import json
import ssl
import sys
import threading


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.reply()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.reply()

    def reply(self):
        body = json.dumps(
            {
                "scheme": self.server.scheme,
                "host": self.headers.get("host"),
                "path": self.path,
                "x-api-key": self.headers.get("x-api-key"),
                "authorization": self.headers.get("authorization"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(address, port, scheme, context=None):
    server = http.server.ThreadingHTTPServer((address, port), Echo)
    server.scheme = scheme
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main():
    address, cert, key = sys.argv[1:4]
    https_port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    http_port = serve(address, 0, "http")
    https_port = serve(address, https_port, "https", context)
    print(f"http={http_port} https={https_port}", flush=True)
    threading.Event().wait()


main()
