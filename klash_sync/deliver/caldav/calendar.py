"""The CalDAV adapter: the only module that talks to CalDAV servers.

Every request is made here, by us, on connections shared across calendars and passes
(pool.py), because we need exact control over each of them:

* discovery is our own walk, at most three PROPFINDs from a server root (the URL,
  its principal, the calendar home), fewer from the principal or the calendar, and
  MKCALENDAR carries the display name: no extra PROPFIND, no PROPPATCH, no listing
  of a calendar just created; every request is counted in ``requests``;
* writes carry preconditions: ``If-None-Match: *`` to create, ``If-Match`` to update
  or delete, so a retried or racing write can never duplicate an event or overwrite a
  change we have not seen;
* each write's target is checked to lie strictly inside the collection: a PUT to
  the collection itself replaces a whole calendar on Radicale;
* a no-op sync must cost one request, so listing is a single PROPFIND of ETags;
* redirects are not followed: credentials go only where the programme says.

HTTP failures are translated into the ``TargetError`` tree, with a one-line reason
that says what happened ("connection refused", "timed out", "redirected to ...") and
never contains a credential.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from lxml import etree

from klash_sync.deliver.caldav.pool import Connections, origin_of
from klash_sync.errors import (
    TargetAuthError,
    TargetConflict,
    TargetError,
    TargetProtocolError,
    TargetUnreachable,
)
from klash_sync.logs import register_secret

log = logging.getLogger(__name__)

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
_NS = {"d": DAV, "c": CALDAV, "cs": CS}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True)

_PROBE_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
    '<d:resourcetype/><d:displayname/><d:getetag/><d:current-user-principal/><c:calendar-home-set/>'
    '</d:prop></d:propfind>'
)
_CALENDARS_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:displayname/></d:prop></d:propfind>'
)
_LIST_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'
)


class PreconditionFailed(TargetError):
    """412: the resource is not in the state the write assumed. The caller re-reads."""


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


def _inside(collection: str, href: str) -> bool:
    """True if ``href`` names a resource directly inside ``collection`` (a path ending '/')."""
    path = posixpath.normpath(unquote(urlsplit(href).path))
    base = posixpath.normpath(unquote(urlsplit(collection).path))
    if not path.startswith(base.rstrip("/") + "/"):
        return False
    rest = path[len(base.rstrip("/")) + 1:]
    return bool(rest) and "/" not in rest and rest not in (".", "..") and "\x00" not in rest


def _norm_href(href: str) -> str:
    """One spelling per resource: the path, percent-encoded the same way every time."""
    return quote(unquote(urlsplit(href).path), safe="/@:+,;=~!$&'()*")


class CalDAVCalendar:
    """One calendar collection. Construct, ``open()``, then list, fetch and write."""

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

    # ---------------------------------------------------------- low level

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
                error = _translate(e, self._where())
                if attempt == 1 and _stale(e):
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
                f"{method} {_path(url)} on {self._where()} was redirected to {location}; "
                "give that address in the programme"
            )
        return response

    def _xml(self, response: Any, what: str) -> Any:
        try:
            return etree.fromstring(response.content, _PARSER)
        except etree.XMLSyntaxError:
            raise TargetProtocolError(f"{what}: the server sent malformed XML") from None

    def _propfind(self, url: str, body: str, depth: str) -> list[_Entry] | None:
        """PROPFIND; None when there is no resource there (404), the parsed entries otherwise."""
        response = self._request("PROPFIND", url, body,
                                 {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
        if response.status_code in (404, 405, 410):
            return None
        if response.status_code != 207:
            raise TargetProtocolError(f"PROPFIND {_path(url)} answered {response.status_code}")
        return _entries(self._xml(response, "PROPFIND"))

    # ------------------------------------------------------------ discovery

    def open(self) -> str:
        """Find (or create) the calendar; return its collection URL, ending in '/'.

        Every request is our own, and counted: at most three from a server root
        (the URL, its principal, the calendar home), fewer from the principal or the
        calendar itself. The first PROPFIND (Depth 1) also lists the URL, so when it is
        the calendar a first sync costs no request more than any later sync; a calendar
        just created is known to be empty and is not listed. What was found is kept in
        the shared ``Connections``, so other calendars of the account start further on.
        """
        if self.collection_url:
            return self.collection_url
        url = _collection(self.endpoint.url)
        memo = (url, self.endpoint.username)
        named = (url, self.endpoint.username, self.endpoint.calendar)
        known = self.connections.collections.get(named)
        if known and not self.endpoint.create_here:
            self.collection_url = known
            return known
        home = None if self.endpoint.create_here else self.connections.homes.get(memo)
        first: list[_Entry] | None = None
        if home is None:
            first = self._propfind(url, _PROBE_BODY, "1")
            this = _self_entry(first, url) if first is not None else None
            if this is not None and this.calendar:
                self.collection_url = url
                self._prefetched = {e.href: e.etag for e in first or () if e is not this and not e.collection}
                return url
            if self.endpoint.create_here:
                self.collection_url = url
                if self._mkcalendar(url):
                    self._prefetched = {}
                return url
            home, entries = self._home(url, first, this)
            self.connections.homes[memo] = home
        else:
            entries = None
        if entries is None:
            entries = self._propfind(home, _CALENDARS_BODY, "1")
        if entries is None:
            self.connections.homes.pop(memo, None)
            raise TargetProtocolError(f"the calendar home {_path(home)} on {self._where()} does not exist")
        for entry in entries:
            if entry.calendar and not _same_path(entry.href, home) and \
                    (entry.name or "") == self.endpoint.calendar:
                found = self._same_origin(urljoin(home, entry.href), "calendar")
                self.collection_url = _collection(found)
                break
        else:
            log.info("creating calendar %r on %s", self.endpoint.calendar, self._where())
            target = urljoin(home, _slug(self.endpoint.username, self.endpoint.calendar))
            self.collection_url = target
            if self._mkcalendar(target):
                self._prefetched = {}
        self.connections.collections[named] = self.collection_url
        return self.collection_url

    def _home(self, url: str, first: list[_Entry] | None,
              this: _Entry | None) -> tuple[str, list[_Entry] | None]:
        """The calendar home, and its members when an answer already listed them.

        From the URL's own answer, or from its principal's: one more PROPFIND, at
        Depth 1, which also lists the home when the principal is the home (Radicale).
        """
        if first is None or this is None:
            raise TargetProtocolError(
                f"{_path(url)} on {self._where()} is not a CalDAV address (nothing there); "
                "give the server's CalDAV URL, your principal URL or the calendar's URL")
        if this.home:
            home = self._same_origin(_collection(urljoin(url, this.home)), "calendar home")
            return home, first if _same_path(home, url) else None
        if not this.principal:
            raise TargetProtocolError(
                f"{_path(url)} on {self._where()} names no principal and no calendar home; "
                "give your principal URL or the calendar's URL")
        principal = self._same_origin(_collection(urljoin(url, this.principal)), "principal")
        answer = self._propfind(principal, _PROBE_BODY, "1")
        own = _self_entry(answer, principal) if answer is not None else None
        if own is None or not own.home:
            raise TargetProtocolError(f"the principal {_path(principal)} on {self._where()} "
                                      "names no calendar home")
        home = self._same_origin(_collection(urljoin(principal, own.home)), "calendar home")
        return home, answer if _same_path(home, principal) else None

    def _same_origin(self, url: str, what: str) -> str:
        """Discovery never takes our credentials to another server than the one configured."""
        if origin_of(url) != origin_of(self.endpoint.url):
            raise TargetProtocolError(
                f"the server at {self._where()} points the {what} to another server ({url}); "
                "give that address in the programme if it is meant")
        return url

    def _mkcalendar(self, url: str) -> bool:
        """MKCALENDAR with the display name in its body. True if created, False if it was there."""
        if self.readonly:
            return True
        root = etree.Element(f"{{{CALDAV}}}mkcalendar", nsmap={"d": DAV, "c": CALDAV})
        prop = etree.SubElement(etree.SubElement(root, f"{{{DAV}}}set"), f"{{{DAV}}}prop")
        etree.SubElement(prop, f"{{{DAV}}}displayname").text = self.endpoint.calendar
        comps = etree.SubElement(prop, f"{{{CALDAV}}}supported-calendar-component-set")
        etree.SubElement(comps, f"{{{CALDAV}}}comp", name="VEVENT")
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        response = self._request("MKCALENDAR", url, body,
                                 {"Content-Type": "application/xml; charset=utf-8"}, refused=(401,))
        if response.status_code == 201:
            return True
        if response.status_code == 405:  # it appeared meanwhile (an earlier try whose answer was lost)
            return False
        if response.status_code in (403, 409, 415, 501):
            raise TargetProtocolError(
                f"calendar {self.endpoint.calendar!r} does not exist and the server does not "
                f"allow creating it ({response.status_code}); create it in your calendar app or "
                "name an existing one"
            )
        raise TargetProtocolError(f"creating the calendar at {_path(url)} answered {response.status_code}")

    # -------------------------------------------------------------- reading

    def listing(self) -> dict[str, str | None]:
        """Every resource in the collection: href -> ETag. One PROPFIND, Depth 1."""
        url = self.open()
        if self._prefetched is not None:
            prefetched, self._prefetched = self._prefetched, None
            return prefetched
        found = self._list(url, probing=False)
        assert found is not None
        return found

    def _list(self, url: str, *, probing: bool) -> dict[str, str | None] | None:
        """PROPFIND Depth 1 of ETags. When ``probing``, None if ``url`` is not a calendar."""
        response = self._request("PROPFIND", url, _LIST_BODY,
                                 {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if probing and response.status_code != 207:
            return None
        if response.status_code == 404:
            raise TargetProtocolError(f"the calendar {url} no longer exists")
        if response.status_code != 207:
            raise TargetProtocolError(f"listing the calendar answered {response.status_code}")
        tree = self._xml(response, "PROPFIND")
        base = _norm_href(url)
        found: dict[str, str | None] = {}
        is_calendar = False
        for entry in tree.findall("d:response", _NS):
            href_el = entry.find("d:href", _NS)
            if href_el is None or not href_el.text:
                continue
            href = _norm_href(href_el.text.strip())
            if href.rstrip("/") == base.rstrip("/"):
                is_calendar = entry.find(".//d:resourcetype/c:calendar", _NS) is not None
                continue
            if entry.find(".//d:resourcetype/d:collection", _NS) is not None:
                continue
            etag_el = entry.find(".//d:getetag", _NS)
            found[href] = etag_el.text.strip() if etag_el is not None and etag_el.text else None
        if probing and not is_calendar:
            return None
        return found

    def fetch(self, hrefs: list[str]) -> dict[str, tuple[str | None, bytes]]:
        """Bodies of the given resources in one calendar-multiget REPORT."""
        if not hrefs:
            return {}
        url = self.open()
        root = etree.Element(f"{{{CALDAV}}}calendar-multiget", nsmap={"d": DAV, "c": CALDAV})
        prop = etree.SubElement(root, f"{{{DAV}}}prop")
        etree.SubElement(prop, f"{{{DAV}}}getetag")
        etree.SubElement(prop, f"{{{CALDAV}}}calendar-data")
        for href in hrefs:
            etree.SubElement(root, f"{{{DAV}}}href").text = href
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        response = self._request("REPORT", url, body,
                                 {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if response.status_code != 207:
            raise TargetProtocolError(f"reading events answered {response.status_code}")
        tree = self._xml(response, "REPORT")
        result: dict[str, tuple[str | None, bytes]] = {}
        for entry in tree.findall("d:response", _NS):
            href_el = entry.find("d:href", _NS)
            data_el = entry.find(".//c:calendar-data", _NS)
            if href_el is None or not href_el.text or data_el is None or data_el.text is None:
                continue
            etag_el = entry.find(".//d:getetag", _NS)
            etag = etag_el.text.strip() if etag_el is not None and etag_el.text else None
            result[_norm_href(href_el.text.strip())] = (etag, data_el.text.encode("utf-8"))
        return result

    # -------------------------------------------------------------- writing

    def _target(self, href: str) -> str:
        if self.readonly:
            raise TargetProtocolError(f"refusing to write {href!r}: this calendar was opened read-only")
        url = self.open()
        if not _inside(url, href):
            # Never write outside the collection, and never to the collection itself.
            raise TargetProtocolError(f"refusing to write to {href!r}: not inside {url}")
        return urljoin(url, href)

    def create(self, href: str, body: bytes) -> str | None:
        """PUT a new resource; 412 if something is already there. Returns the new ETag."""
        response = self._request("PUT", self._target(href), body, {
            "If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"})
        return self._written(response, href, "create")

    def update(self, href: str, body: bytes, etag: str | None) -> str | None:
        """PUT over an existing resource, only if it is still at ``etag``."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers["If-Match"] = etag if etag else "*"
        response = self._request("PUT", self._target(href), body, headers)
        return self._written(response, href, "update")

    def delete(self, href: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        response = self._request("DELETE", self._target(href), b"", headers)
        if response.status_code in (200, 204, 404, 410):
            return
        if response.status_code == 412:
            raise PreconditionFailed(f"{href} changed on the server before delete")
        raise TargetProtocolError(f"delete of {href} answered {response.status_code}")

    def _written(self, response: Any, href: str, what: str) -> str | None:
        status = response.status_code
        if status in (200, 201, 204):
            etag = response.headers.get("ETag")
            # A weak or missing ETag cannot be used for If-Match; the next listing fills it in.
            return etag if etag and not etag.startswith("W/") else None
        if status == 412:
            raise PreconditionFailed(f"{href} is not in the state the {what} expected")
        detail = _short_body(response)
        if what == "create" and status in (403, 409) and "trash" in detail.lower():
            raise TargetConflict(
                f"the server refuses to re-create {href}: an event with the same UID is in its "
                "trash bin (Nextcloud keeps deleted events there); empty the trash bin or restore it"
            )
        if status == 415:
            raise TargetProtocolError(f"{what} of {href} refused (415): the server rejects the event format")
        raise TargetProtocolError(f"{what} of {href} answered {status}{detail and ': ' + detail}")


def _collection(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _short_body(response: Any) -> str:
    try:
        text = response.content[:300].decode("utf-8", "replace")
    except Exception:
        return ""
    return " ".join(text.split())[:200]


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] or type(e).__name__


def _translate(e: BaseException, where: str = "") -> TargetError:
    """Library and network exceptions -> our tree, by kind, with a short one-line reason.

    The words are the ones an operator searches for: "connection refused", "timed out".
    """
    if isinstance(e, TargetError):
        return e
    name = type(e).__name__.lower()
    text = _chain(e)
    at = f" {where}" if where else " the server"
    if "timeout" in name or "timed out" in text:
        return TargetUnreachable(f"no answer from{at} in time (timed out)")
    if "ssl" in name or "certificate" in text:
        return TargetUnreachable(f"TLS verification failed for{at}; add its CA with ca_bundle")
    if "refused" in text:
        return TargetUnreachable(f"cannot connect to{at}: connection refused")
    if "name resolution" in text or "nodename" in text or "getaddrinfo" in text \
            or "name or service not known" in text:
        return TargetUnreachable(f"cannot resolve the server's name{at if where else ''}")
    if ("reset" in text or "aborted" in text or "remote end closed" in text or "closed" in text
            or "connection" in name or "protocol" in name):
        return TargetUnreachable(f"the connection to{at} was closed unexpectedly")
    return TargetProtocolError(f"{type(e).__name__}: {_reason(e)}")


def _chain(e: BaseException) -> str:
    """The whole text of an exception and its causes, lower-cased: what it was, not how long."""
    parts, seen = [], 0
    current: BaseException | None = e
    while current is not None and seen < 8:
        parts.append(f"{type(current).__name__}: {current}")
        current, seen = current.__cause__ or current.__context__, seen + 1
    return " ".join(" ".join(parts).split()).lower()


def _stale(e: BaseException) -> bool:
    """A pooled connection the server had closed: the request never got an answer, nor a timeout."""
    text = _chain(e)
    if "timed out" in text or "timeout" in type(e).__name__.lower() or "refused" in text:
        return False
    return any(w in text for w in ("remote end closed", "reset by peer", "aborted", "broken pipe",
                                   "connection closed", "without response", "disconnected"))


def _auth(endpoint: Endpoint) -> Any:
    from niquests.auth import HTTPBasicAuth, HTTPDigestAuth

    if endpoint.auth == "digest":
        return HTTPDigestAuth(endpoint.username, endpoint.password)
    return HTTPBasicAuth(endpoint.username, endpoint.password)


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _same_path(a: str, b: str) -> bool:
    return _norm_href(a).rstrip("/") == _norm_href(b).rstrip("/")


def _slug(username: str, calendar: str) -> str:
    """A new calendar's path segment: the same for the same account and name, every time."""
    digest = hashlib.sha256(f"{username}\x00{calendar}".encode()).hexdigest()[:16]
    return f"klash-{digest}/"


@dataclass
class _Entry:
    """One ``d:response`` of a PROPFIND, with the properties discovery and listing read."""

    href: str
    calendar: bool = False
    collection: bool = False
    name: str | None = None
    etag: str | None = None
    principal: str | None = None
    home: str | None = None


def _entries(tree: Any) -> list[_Entry]:
    found = []
    for response in tree.findall("d:response", _NS):
        href_el = response.find("d:href", _NS)
        if href_el is None or not href_el.text:
            continue
        entry = _Entry(_norm_href(href_el.text.strip()))
        for propstat in response.findall("d:propstat", _NS):
            status = propstat.findtext("d:status", "", _NS)
            if status and " 200" not in status:
                continue
            prop = propstat.find("d:prop", _NS)
            if prop is None:
                continue
            kind = prop.find("d:resourcetype", _NS)
            if kind is not None:
                entry.calendar = kind.find("c:calendar", _NS) is not None
                entry.collection = kind.find("d:collection", _NS) is not None
            name = prop.findtext("d:displayname", None, _NS)
            if name is not None:
                entry.name = name.strip()
            etag = prop.findtext("d:getetag", None, _NS)
            if etag:
                entry.etag = etag.strip()
            entry.principal = prop.findtext("d:current-user-principal/d:href", None, _NS) or entry.principal
            entry.home = prop.findtext("c:calendar-home-set/d:href", None, _NS) or entry.home
        found.append(entry)
    return found


def _self_entry(entries: list[_Entry] | None, url: str) -> _Entry | None:
    """The entry describing ``url`` itself (a PROPFIND at Depth 1 also lists its members)."""
    for entry in entries or ():
        if _same_path(entry.href, url):
            return entry
    return None
