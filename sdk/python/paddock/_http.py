"""A small JSON-over-HTTP client on urllib (no third-party dependencies)."""
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Type

from ._version import __version__
from .exceptions import AuthenticationException, PaddockException

DEFAULT_TIMEOUT = 60.0

CA_FILE_ENV = "PADDOCK_CA_FILE"

# A replica that could not hand a request to the leader says so with this header: the request was not
# applied, and another replica may take it.
RETRY_ELSEWHERE = "Paddock-Retry-Elsewhere"


def server_list(spec: str) -> List[str]:
    """The server URLs in ``spec``: one URL, or the URLs of a workspace's replicas separated by commas
    (or white space), without trailing slashes or repeats."""
    out: List[str] = []
    for f in re.split(r"[,\s]+", spec or ""):
        u = f.strip().rstrip("/")
        if u and u not in out:
            out.append(u)
    return out


def _not_sent(reason: Any) -> bool:
    """Whether a request failed before reaching the server: it could not connect."""
    return isinstance(reason, ConnectionRefusedError) or (
        isinstance(reason, OSError) and reason.errno in (111, 113, 101))


def ssl_context(ca_file: Optional[str] = None, ca_pem: Optional[str] = None,
                exc: Type[PaddockException] = PaddockException) -> Optional[ssl.SSLContext]:
    """A TLS context that trusts only the CA in ``ca_file`` (a PEM file) or ``ca_pem`` (PEM text), or None
    for the system's roots when neither is given."""
    if not ca_file and not ca_pem:
        return None
    try:
        if ca_file:
            return ssl.create_default_context(cafile=ca_file)
        return ssl.create_default_context(cadata=ca_pem)
    except (OSError, ssl.SSLError, ValueError) as e:
        what = "the CA file %s" % ca_file if ca_file else "the CA in the Paddock config"
        raise exc("%s cannot be used: %s" % (what, getattr(e, "strerror", None) or e)) from None


def _error_from(status: int, body: bytes, exc: Type[PaddockException], what: str) -> PaddockException:
    code = field = None
    message = ""
    try:
        doc = json.loads(body.decode("utf-8"))
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            code = err.get("code")
            field = err.get("field")
    except (ValueError, UnicodeDecodeError):
        message = body.decode("utf-8", "replace").strip()[:500]
    if not message:
        message = "%s failed with HTTP status %d" % (what, status)
    if status in (401,) and not issubclass(exc, AuthenticationException):
        # keep the caller's class so `except ComputeTargetException` still works
        pass
    return exc(message, code=code, field=field, status=status)


class Client:
    """Talks to a Paddock server with one bearer token. ``server`` may list the URLs of a workspace's
    replicas, separated by commas: a call goes to the one that answered last; when it cannot be reached,
    or answers that another must take the call (``Paddock-Retry-Elsewhere``), the next is tried. A call
    whose request may have been applied is not sent again, except reads."""

    def __init__(self, server: str, token: Optional[str], timeout: float = DEFAULT_TIMEOUT,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.servers = server_list(server) or [server.rstrip("/")]
        self.server = self.servers[0]  # the one that answered last
        self.token = token
        self.timeout = timeout
        self.context = context  # for https: the CA it trusts (None: the system's roots)

    def url(self, path: str, query: Optional[Dict[str, Any]] = None, server: Optional[str] = None) -> str:
        """The full URL of a path with a query (on ``server``, else the one that answered last)."""
        u = (server or self.server) + path
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in query.items() if v is not None}
            if q:
                u += "?" + urllib.parse.urlencode(q)
        return u

    def _request(self, method: str, path: str, *, body: Any = None, data: Optional[bytes] = None,
                 content_type: Optional[str] = None, query: Optional[Dict[str, Any]] = None,
                 headers: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
                 exc: Type[PaddockException] = PaddockException) -> Any:
        hdrs = {"User-Agent": "paddock-python/" + __version__, "Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        if headers:
            hdrs.update(headers)
        what = "%s %s" % (method, path)
        read = method in ("GET", "HEAD")
        first = self.servers.index(self.server) if self.server in self.servers else 0
        n = len(self.servers)
        for i in range(n):
            server = self.servers[(first + i) % n]
            more = i + 1 < n
            req = urllib.request.Request(self.url(path, query, server), data=data, method=method, headers=hdrs)
            try:
                resp = urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self.context)
                self.server = server
                return resp
            except urllib.error.HTTPError as e:
                try:
                    raw = e.read()
                finally:
                    e.close()
                if more and (e.headers.get(RETRY_ELSEWHERE) or read and e.code >= 500):
                    continue
                self.server = server
                raise _error_from(e.code, raw, exc, what) from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise exc("the Paddock server at %s presented a certificate this client does not trust (%s): "
                              "give the SDK the server's CA (Workspace(ca_file=...) or %s)"
                              % (server, reason.verify_message or reason, CA_FILE_ENV), code="Unavailable") from None
                if more and (read or _not_sent(reason)):
                    continue
                if n > 1:
                    self.server = self.servers[(first + i + 1) % n]  # the next call tries the next one first
                raise exc("cannot reach the Paddock server at %s (%s)" % (server, reason),
                          code="Unavailable") from None
        raise exc("no Paddock server to call", code="Unavailable")

    def call(self, method: str, path: str, *, body: Any = None, query: Optional[Dict[str, Any]] = None,
             exc: Type[PaddockException] = PaddockException, timeout: Optional[float] = None,
             headers: Optional[Dict[str, str]] = None) -> Any:
        """Sends a JSON request and returns the decoded JSON answer (None when empty)."""
        with self._request(method, path, body=body, query=query, exc=exc, timeout=timeout,
                           headers=headers) as resp:
            raw = resp.read()
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            return raw.decode("utf-8", "replace")

    def raw(self, method: str, path: str, *, data: Optional[bytes] = None, content_type: Optional[str] = None,
            query: Optional[Dict[str, Any]] = None, exc: Type[PaddockException] = PaddockException,
            timeout: Optional[float] = None) -> bytes:
        """Sends a request and returns the answer's bytes."""
        with self._request(method, path, data=data, content_type=content_type, query=query, exc=exc,
                           timeout=timeout) as resp:
            answer: bytes = resp.read()
            return answer

    def call_raw_json(self, method: str, path: str, data: bytes, content_type: str,
                      exc: Type[PaddockException] = PaddockException, timeout: Optional[float] = None) -> Any:
        """Sends raw bytes and decodes a JSON answer."""
        raw = self.raw(method, path, data=data, content_type=content_type, exc=exc, timeout=timeout)
        return json.loads(raw.decode("utf-8")) if raw else None

    def status_of(self, method: str, path: str, exc: Type[PaddockException] = PaddockException) -> int:
        """Returns the HTTP status of a body-less request (e.g. HEAD) without raising on 404."""
        try:
            with self._request(method, path, exc=exc) as resp:
                status: int = resp.status
                return status
        except PaddockException as e:
            if e.status == 404:
                return 404
            raise

    def lines(self, path: str, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None,
              exc: Type[PaddockException] = PaddockException) -> Iterator[Any]:
        """Streams an NDJSON answer, one decoded object per line."""
        resp = self._request("GET", path, query=query, exc=exc, timeout=timeout,
                             headers={"Accept": "application/x-ndjson"})
        try:
            for line in resp:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line.decode("utf-8"))
                    except ValueError:
                        continue
        finally:
            resp.close()
