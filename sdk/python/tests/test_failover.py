"""Several server URLs (a workspace's replicas): the SDK tries the next one when a replica cannot be
reached or answers Paddock-Retry-Elsewhere, and does not send again a write that may have been applied."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from paddock import Workspace
from paddock._http import server_list
from paddock.exceptions import PaddockException


def _closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


class _Stub:
    """A replica that answers every request with one status (and the retry header when asked)."""

    def __init__(self, status, retry_elsewhere):
        stub = self
        self.seen = []

        class H(BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                stub.seen.append((self.command, self.path))
                body = json.dumps({"error": {"code": "Unavailable", "message": "stub replica"}}).encode()
                self.send_response(status)
                if retry_elsewhere:
                    self.send_header("Paddock-Retry-Elsewhere", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _token(server):
    with open(server["config"]) as f:
        return json.load(f)["token"]


def _run_count(ws):
    return len(ws._client.call("GET", "/api/v1/workspaces/default/runs", query={"limit": 100000})["items"])


def test_server_list():
    assert server_list(" http://a:1/, http://b:2 http://a:1 ") == ["http://a:1", "http://b:2"]


def test_unreachable_replica_is_skipped(server):
    ws = Workspace(server=_closed_port_url() + "," + server["url"], token=_token(server), workspace="default")
    before = _run_count(ws)
    doc = ws._client.call("POST", "/api/v1/workspaces/default/runs",
                          body={"compute": "local", "command": ["true"]})
    assert doc["id"] and _run_count(ws) == before + 1
    assert ws._client.server == server["url"]  # the next call goes to the one that answered


def test_retry_elsewhere_goes_to_the_next_replica(server):
    stub = _Stub(503, retry_elsewhere=True)
    try:
        ws = Workspace(server=stub.url + "," + server["url"], token=_token(server), workspace="default")
        before = _run_count(Workspace(server=server["url"], token=_token(server), workspace="default"))
        doc = ws._client.call("POST", "/api/v1/workspaces/default/runs",
                              body={"compute": "local", "command": ["true"]})
        assert doc["id"]
        assert ("POST", "/api/v1/workspaces/default/runs") in stub.seen
        assert _run_count(ws) == before + 1
    finally:
        stub.close()


def test_write_that_may_have_been_applied_is_not_sent_again(server):
    stub = _Stub(502, retry_elsewhere=False)
    try:
        ws = Workspace(server=stub.url + "," + server["url"], token=_token(server), workspace="default")
        direct = Workspace(server=server["url"], token=_token(server), workspace="default")
        before = _run_count(direct)
        with pytest.raises(PaddockException) as e:
            ws._client.call("POST", "/api/v1/workspaces/default/runs", body={"compute": "local", "command": ["true"]})
        assert e.value.status == 502
        assert _run_count(direct) == before
        # A read is sent again: the second replica answers it.
        ws._client.server = stub.url
        assert isinstance(ws._client.call("GET", "/api/v1/workspaces/default/runs")["items"], list)
    finally:
        stub.close()
