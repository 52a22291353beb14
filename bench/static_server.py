"""A minimal static HTTP/1.1 file server (keep-alive, Content-Length): the anchor that
bench/serve.sh measures `stratus serve` against. Usage: static_server.py PORT DIR"""
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As stratus serve does: no waiting for delayed ACKs on kept-alive connections.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


port, directory = int(sys.argv[1]), sys.argv[2]
server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", port), functools.partial(Handler, directory=directory)
)
server.serve_forever()
