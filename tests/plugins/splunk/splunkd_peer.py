"""A stand-in for splunkd's REST API, only ``storage/passwords``, answering as splunkd does and as splunklib's
``client.py`` parses it: Atom feeds (``<feed><entry><content type="text/xml"><s:dict><s:key name=...>``),
``servicesNS/<owner>/<app>/storage/passwords[/<realm>:<user>:]``, 201 on create, 409 when the credential
exists, 404 for an unknown one, 401 for a wrong session key (``Authorization: Splunk <key>``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

FEED_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">\n'
    "  <title>passwords</title>\n  <id>{base}/servicesNS/{owner}/{app}/storage/passwords</id>\n"
    "  <updated>2026-12-02T10:00:00+00:00</updated>\n"
    '  <generator build="0123456789ab" version="9.3.0"/>\n  <author><name>Splunk</name></author>\n'
    '  <link href="/servicesNS/{owner}/{app}/storage/passwords/_new" rel="create"/>\n'
    "  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
    "  <opensearch:itemsPerPage>30</opensearch:itemsPerPage>\n"
    "  <opensearch:startIndex>0</opensearch:startIndex>\n  <s:messages/>\n"
)
ENTRY = """  <entry>
    <title>{name}</title>
    <id>{base}/servicesNS/nobody/{app}/storage/passwords/{qname}</id>
    <updated>2026-12-02T10:00:00+00:00</updated>
    <link href="/servicesNS/nobody/{app}/storage/passwords/{qname}" rel="alternate"/>
    <author><name>nobody</name></author>
    <link href="/servicesNS/nobody/{app}/storage/passwords/{qname}" rel="list"/>
    <link href="/servicesNS/nobody/{app}/storage/passwords/{qname}" rel="edit"/>
    <link href="/servicesNS/nobody/{app}/storage/passwords/{qname}" rel="remove"/>
    <content type="text/xml">
      <s:dict>
        <s:key name="clear_password">{clear}</s:key>
        <s:key name="eai:acl">
          <s:dict>
            <s:key name="app">{app}</s:key>
            <s:key name="can_write">1</s:key>
            <s:key name="owner">nobody</s:key>
            <s:key name="perms"><s:dict><s:key name="read"><s:list><s:item>*</s:item></s:list></s:key>
              <s:key name="write"><s:list><s:item>admin</s:item></s:list></s:key></s:dict></s:key>
            <s:key name="sharing">app</s:key>
          </s:dict>
        </s:key>
        <s:key name="encr_password">$7$c3BsdW5rZA==</s:key>
        <s:key name="password">********</s:key>
        <s:key name="realm">{realm}</s:key>
        <s:key name="username">{username}</s:key>
      </s:dict>
    </content>
  </entry>
"""
MESSAGE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<response><messages><msg type="{kind}">{text}</msg></messages></response>\n'
)


class Splunkd:
    """``with Splunkd(session_key="k") as splunkd: splunkd.uri`` — credentials live in ``splunkd.passwords``
    as ``{(app, "realm:user:"): {"realm", "username", "password"}}``; ``splunkd.requests`` logs (method, path)."""

    def __init__(self, session_key: str = "splunkd-session-key") -> None:
        self.session_key = session_key
        self.passwords: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.refuse_reads = False  # answer 403 to reads (a role without list_storage_passwords)
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                peer._handle(self, "GET")

            def do_POST(self):
                peer._handle(self, "POST")

            def do_DELETE(self):
                peer._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Splunkd:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- REST ---------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        self.requests.append((method, url.path))
        length = int(h.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()} if length else {}
        if h.headers.get("Authorization") != f"Splunk {self.session_key}":
            return self._send(h, 401, MESSAGE.format(kind="WARN", text="call not properly authenticated"))
        parts = url.path.strip("/").split("/")
        if len(parts) < 5 or parts[0] != "servicesNS" or parts[3:5] != ["storage", "passwords"]:
            return self._send(h, 404, MESSAGE.format(kind="ERROR", text="Not Found"))
        owner, app = parts[1], parts[2]
        name = unquote(parts[5]) if len(parts) > 5 else None
        if method == "GET" and self.refuse_reads:
            return self._send(h, 403, MESSAGE.format(kind="ERROR", text="You (user=ann) do not have permission"))
        if method == "GET" and name is None:
            visible = [v for (a, _), v in sorted(self.passwords.items()) if a == app]
            return self._send(h, 200, self._feed(owner, app, visible))
        if method == "POST" and name is None:
            realm, user = form.get("realm", ""), form.get("name", "")
            key = f"{realm}:{user}:"
            if not user or "password" not in form:
                return self._send(h, 400, MESSAGE.format(kind="ERROR", text="Missing argument: name or password"))
            if (app, key) in self.passwords:
                text = f"Object id=credential:{key} cannot be overwritten. It already exists."
                return self._send(h, 409, MESSAGE.format(kind="ERROR", text=escape(text)))
            self.passwords[(app, key)] = {"realm": realm, "username": user, "password": form["password"]}
            return self._send(h, 201, self._feed(owner, app, [self.passwords[(app, key)]]))
        entry = self.passwords.get((app, name or ""))
        if entry is None:
            text = f"Could not find object id=credential:{name}"
            return self._send(h, 404, MESSAGE.format(kind="ERROR", text=escape(text)))
        if method == "GET":
            return self._send(h, 200, self._feed(owner, app, [entry]))
        if method == "POST":
            if "password" in form:
                entry["password"] = form["password"]
            return self._send(h, 200, self._feed(owner, app, [entry]))
        del self.passwords[(app, name or "")]
        return self._send(h, 200, self._feed(owner, app, []))

    def _feed(self, owner: str, app: str, entries: list[dict[str, str]]) -> str:
        out = FEED_HEAD.format(base=self.uri, owner=owner, app=app, total=len(entries))
        for e in entries:
            name = f"{e['realm']}:{e['username']}:"
            out += ENTRY.format(
                base=self.uri,
                app=app,
                name=escape(name),
                qname=quote(name, safe=""),
                clear=escape(e["password"]),
                realm=escape(e["realm"]),
                username=escape(e["username"]),
            )
        return out + "</feed>\n"

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: str) -> None:
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/xml; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Server", "Splunkd")
        h.end_headers()
        h.wfile.write(data)
