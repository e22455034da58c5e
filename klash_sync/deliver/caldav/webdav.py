"""WebDAV plumbing under the CalDAV adapter: how to reach a server, one request, multistatus.

``DavClient`` sends every request of a calendar on the shared pool (``pool``), counts
it, retries once a connection the server closed while it sat idle, never follows a
redirect (credentials go only where the programme says), and turns refusals and
failures into the ``TargetError`` tree (``translate``). The functions below it parse
PROPFIND answers and spell hrefs one way, without any network.
"""

from __future__ import annotations

import base64
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

from klash_sync.deliver.caldav.pool import Connections
from klash_sync.deliver.caldav.translate import stale, translate
from klash_sync.errors import TargetAuthError, TargetProtocolError
from klash_sync.logs import register_secret

log = logging.getLogger(__name__)

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
NS = {"d": DAV, "c": CALDAV, "cs": CS}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True)


@dataclass(frozen=True)
class Endpoint:
    """How to reach one calendar. ``password`` is kept out of repr and never logged."""

    url: str
    username: str
    password: str = field(repr=False)
    calendar: str = "Klash"
    ca_bundle: str | None = None
    timeout: float = 30.0
    auth: str = "basic"
    create_here: bool = False  # the URL is the calendar; MKCALENDAR there if it is missing
    create: bool = True  # False (purge): a calendar not found is TargetMissing, never made


class DavClient:
    """Requests to one endpoint on pooled connections, each counted in ``requests``."""

    def __init__(self, endpoint: Endpoint, *, collection_url: str | None = None,
                 connections: Connections | None = None, readonly: bool = False) -> None:
        # The password, and the Basic credentials built from it, never reach a log line,
        # even when a server echoes our request into an error page that a library logs.
        register_secret(endpoint.password)
        register_secret(base64.b64encode(f"{endpoint.username}:{endpoint.password}".encode()).decode())
        self.endpoint = endpoint
        self.collection_url = collection_url
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetProtocolError(f"cannot use CalDAV URL {endpoint.url!r}: not an http(s) URL")
        self._own = connections is None
        self.connections = connections or Connections()
        self.session = self.connections.session()
        self.auth = _auth(endpoint)
        self.requests = 0
        self._prefetched: dict[str, str | None] | None = None
        # For `plan`: a calendar that would be created is taken as created and empty,
        # and no MKCALENDAR is sent. (Writes are never planned to be sent in that mode.)
        self.readonly = readonly

    def close(self) -> None:
        """Nothing to close but a private pool: shared connections stay open for reuse."""
        if self._own:
            self.connections.close()

    def _where(self) -> str:
        parts = urlsplit(self.endpoint.url)
        return parts.netloc.rsplit("@", 1)[-1]

    def _request(self, method: str, url: str, body: bytes | str = b"",
                 headers: dict[str, str] | None = None, *,
                 refused: tuple[int, ...] = (401, 403)) -> Any:
        """One request (counted, with any authentication challenge it took) on a pooled connection.

        A connection the server closed while it sat idle in the pool fails before the
        request reaches it; that is retried once, on a new connection. Every request we
        send is safe to repeat: reads, and writes guarded by preconditions.
        """
        for attempt in (1, 2):
            self.requests += 1
            try:
                response = self.session.request(
                    method, url, data=body, headers=headers or {}, auth=self.auth,
                    timeout=self.endpoint.timeout, verify=self.endpoint.ca_bundle or True,
                    allow_redirects=False,
                )
            except Exception as e:
                error = translate(e, self._where())
                if attempt == 1 and stale(e):
                    log.debug("%s %s: connection closed by the server, retrying once", method, url)
                    continue
                raise error from None
            self.requests += len(getattr(response, "history", None) or ())  # e.g. a Digest challenge
            break
        if response.status_code in refused:
            raise TargetAuthError(
                f"{method} refused with {response.status_code}: check the username, the "
                f"password and the rights on {self.endpoint.url}"
            )
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "?")
            raise TargetProtocolError(
                f"{method} {path_of(url)} on {self._where()} was redirected to {location}; "
                "give that address in the programme"
            )
        return response

    def _xml(self, response: Any, what: str) -> Any:
        try:
            return etree.fromstring(response.content, _PARSER)
        except etree.XMLSyntaxError:
            raise TargetProtocolError(f"{what}: the server sent malformed XML") from None

    def _propfind(self, url: str, body: str, depth: str) -> list[Entry] | None:
        """PROPFIND; None when there is no resource there (404), the parsed entries otherwise."""
        response = self._request("PROPFIND", url, body,
                                 {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
        if response.status_code in (404, 405, 410):
            return None
        if response.status_code != 207:
            raise TargetProtocolError(f"PROPFIND {path_of(url)} answered {response.status_code}")
        return entries(self._xml(response, "PROPFIND"))


def _auth(endpoint: Endpoint) -> Any:
    from niquests.auth import HTTPBasicAuth, HTTPDigestAuth

    if endpoint.auth == "digest":
        return HTTPDigestAuth(endpoint.username, endpoint.password)
    return HTTPBasicAuth(endpoint.username, endpoint.password)


# ------------------------------------------------------------------ hrefs

def inside(collection: str, href: str) -> bool:
    """True if ``href`` names a resource directly inside ``collection`` (a path ending '/')."""
    path = posixpath.normpath(unquote(urlsplit(href).path))
    base = posixpath.normpath(unquote(urlsplit(collection).path))
    if not path.startswith(base.rstrip("/") + "/"):
        return False
    rest = path[len(base.rstrip("/")) + 1:]
    return bool(rest) and "/" not in rest and rest not in (".", "..") and "\x00" not in rest


def norm_href(href: str) -> str:
    """One spelling per resource: the path, percent-encoded the same way every time."""
    return quote(unquote(urlsplit(href).path), safe="/@:+,;=~!$&'()*")


def collection_of(url: str) -> str:
    """The URL as a collection: ending in '/'."""
    return url if url.endswith("/") else url + "/"


def path_of(url: str) -> str:
    return urlsplit(url).path or "/"


def same_path(a: str, b: str) -> bool:
    return norm_href(a).rstrip("/") == norm_href(b).rstrip("/")


# ------------------------------------------------------------ multistatus

@dataclass
class Entry:
    """One ``d:response`` of a PROPFIND, with the properties discovery and listing read."""

    href: str
    calendar: bool = False
    collection: bool = False
    name: str | None = None
    etag: str | None = None
    principal: str | None = None
    home: str | None = None


def entries(tree: Any) -> list[Entry]:
    found = []
    for response in tree.findall("d:response", NS):
        href_el = response.find("d:href", NS)
        if href_el is None or not href_el.text:
            continue
        entry = Entry(norm_href(href_el.text.strip()))
        for propstat in response.findall("d:propstat", NS):
            status = propstat.findtext("d:status", "", NS)
            if status and " 200" not in status:
                continue
            prop = propstat.find("d:prop", NS)
            if prop is None:
                continue
            kind = prop.find("d:resourcetype", NS)
            if kind is not None:
                entry.calendar = kind.find("c:calendar", NS) is not None
                entry.collection = kind.find("d:collection", NS) is not None
            name = prop.findtext("d:displayname", None, NS)
            if name is not None:
                entry.name = name.strip()
            etag = prop.findtext("d:getetag", None, NS)
            if etag:
                entry.etag = etag.strip()
            entry.principal = prop.findtext("d:current-user-principal/d:href", None, NS) or entry.principal
            entry.home = prop.findtext("c:calendar-home-set/d:href", None, NS) or entry.home
        found.append(entry)
    return found


def self_entry(found: list[Entry] | None, url: str) -> Entry | None:
    """The entry describing ``url`` itself (a PROPFIND at Depth 1 also lists its members)."""
    for entry in found or ():
        if same_path(entry.href, url):
            return entry
    return None
