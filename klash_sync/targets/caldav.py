"""The CalDAV adapter: the only module that talks to CalDAV servers (and imports caldav).

The caldav library finds the calendar (principal → calendar-home-set → calendars)
and creates it with MKCALENDAR. Every other request is made here, on the library's
HTTP session, because we need exact control over them:

* writes carry preconditions: ``If-None-Match: *`` to create (caldav's own PUT does
  not send it), ``If-Match`` to update or delete, so a retried or racing write can
  never duplicate an event or overwrite a change we have not seen;
* each write's target is checked to lie strictly inside the collection: a PUT to
  the collection itself replaces a whole calendar on Radicale;
* a no-op sync must cost one request, so listing is a single PROPFIND of ETags.

Library and HTTP failures are translated into the ``TargetError`` tree, with a
one-line reason that never contains a credential.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from lxml import etree

from ..errors import (
    TargetAuthError,
    TargetConflict,
    TargetError,
    TargetProtocolError,
    TargetUnreachable,
)
from ..logs import register_secret

log = logging.getLogger(__name__)

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
_NS = {"d": DAV, "c": CALDAV, "cs": CS}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True)

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

    def __init__(self, endpoint: Endpoint, *, collection_url: str | None = None) -> None:
        from caldav.davclient import DAVClient  # the one place the library is imported

        # The password, and the Basic credentials built from it, never reach a log line,
        # even when a server echoes our request into an error page that a library logs.
        register_secret(endpoint.password)
        register_secret(base64.b64encode(f"{endpoint.username}:{endpoint.password}".encode()).decode())
        self.endpoint = endpoint
        self.collection_url = collection_url
        try:
            self.client = DAVClient(
                url=endpoint.url,
                username=endpoint.username,
                password=endpoint.password,
                auth_type=endpoint.auth,
                timeout=int(endpoint.timeout) or 1,
                ssl_verify_cert=endpoint.ca_bundle or True,
                enable_rfc6764=False,
            )
        except Exception as e:  # bad URL and the like
            raise TargetProtocolError(f"cannot use CalDAV URL {endpoint.url!r}: {_reason(e)}") from None
        self.requests = 0
        self._prefetched: dict[str, str | None] | None = None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken session must not mask the real error
            self.client.close()

    # ---------------------------------------------------------- low level

    def _where(self) -> str:
        parts = urlsplit(self.endpoint.url)
        return parts.netloc.rsplit("@", 1)[-1]

    def _request(self, method: str, url: str, body: bytes | str = b"",
                 headers: dict[str, str] | None = None) -> Any:
        self.requests += 1
        try:
            response = self.client.session.request(
                method, url, data=body, headers=headers or {}, auth=self.client.auth,
                timeout=self.endpoint.timeout, verify=self.endpoint.ca_bundle or True,
                allow_redirects=False,
            )
        except Exception as e:
            raise _translate(e, self._where()) from None
        if response.status_code in (401, 403):
            raise TargetAuthError(
                f"{method} refused with {response.status_code}: check the username, the "
                f"password and the rights on {self.endpoint.url}"
            )
        return response

    def _xml(self, response: Any, what: str) -> Any:
        try:
            return etree.fromstring(response.content, _PARSER)
        except etree.XMLSyntaxError:
            raise TargetProtocolError(f"{what}: the server sent malformed XML") from None

    # ------------------------------------------------------------ discovery

    def open(self) -> str:
        """Find (or create) the calendar; return its collection URL, ending in '/'.

        When the configured URL is the calendar itself, the one PROPFIND that checks it
        also lists it, and ``listing()`` uses that answer: a first sync costs no request
        more than the listing a later sync makes anyway.
        """
        if self.collection_url:
            return self.collection_url
        url = self.endpoint.url if self.endpoint.url.endswith("/") else self.endpoint.url + "/"
        found = self._list(url, probing=True)
        if found is not None:
            self.collection_url, self._prefetched = url, found
            return url
        if self.endpoint.create_here:
            self._mkcalendar(url)
            self.collection_url, self._prefetched = url, {}
            return url
        self.collection_url = self._discover()
        return self.collection_url

    def _mkcalendar(self, url: str) -> None:
        root = etree.Element(f"{{{CALDAV}}}mkcalendar", nsmap={"d": DAV, "c": CALDAV})
        prop = etree.SubElement(etree.SubElement(root, f"{{{DAV}}}set"), f"{{{DAV}}}prop")
        etree.SubElement(prop, f"{{{DAV}}}displayname").text = self.endpoint.calendar
        comps = etree.SubElement(prop, f"{{{CALDAV}}}supported-calendar-component-set")
        etree.SubElement(comps, f"{{{CALDAV}}}comp", name="VEVENT")
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        response = self._request("MKCALENDAR", url, body,
                                 {"Content-Type": "application/xml; charset=utf-8"})
        if response.status_code not in (201, 405):  # 405: it appeared meanwhile
            raise TargetProtocolError(f"creating the calendar at {url} answered {response.status_code}")

    def _discover(self) -> str:
        from caldav.lib import error as caldav_error

        try:
            principal = self.client.principal()
            calendars = principal.calendars()
            for calendar in calendars:
                if (calendar.get_display_name() or "") == self.endpoint.calendar:
                    return _collection(str(calendar.url))
            log.info("creating calendar %r on %s", self.endpoint.calendar, self.endpoint.url)
            created = principal.make_calendar(name=self.endpoint.calendar)
            return _collection(str(created.url))
        except TargetError:
            raise
        except caldav_error.AuthorizationError:
            raise TargetAuthError(
                f"the server refused the login for {self.endpoint.username!r} at {self.endpoint.url}"
            ) from None
        except Exception as e:
            if "MKCALENDAR" in str(e) or "mkcalendar" in type(e).__name__.lower():
                raise TargetProtocolError(
                    f"calendar {self.endpoint.calendar!r} does not exist and the server does not "
                    "allow creating it; create it in your calendar app or name an existing one"
                ) from None
            raise _translate(e, self._where()) from None

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
    """Library and network exceptions -> our tree, by kind, with a short one-line reason."""
    if isinstance(e, TargetError):
        return e
    name = type(e).__name__.lower()
    text = _reason(e).lower()
    at = f" {where}" if where else ""
    if "timeout" in name or "timed out" in text:
        return TargetUnreachable(f"no answer from{at or ' the server'} in time")
    if "ssl" in name or "certificate" in text:
        return TargetUnreachable(
            f"TLS verification failed for{at or ' the server'}; add its CA with ca_bundle")
    if "refused" in text:
        return TargetUnreachable(f"cannot connect to{at or ' the server'}: connection refused")
    if "name resolution" in text or "nodename" in text or "getaddrinfo" in text:
        return TargetUnreachable(f"cannot resolve the server's name{at}")
    if ("reset" in text or "aborted" in text or "remote end closed" in text
            or "connection" in name or "protocol" in name):
        return TargetUnreachable(f"the connection to{at or ' the server'} was closed unexpectedly")
    if "authoriz" in name or "unauthorized" in text:
        return TargetAuthError("login refused")
    return TargetProtocolError(f"{type(e).__name__}: {_reason(e)}")
