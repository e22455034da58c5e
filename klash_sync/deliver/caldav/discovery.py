"""Finding a calendar collection, or creating it: from a server root, a principal or the calendar.

Discovery is our own walk, every request counted: at most three PROPFINDs from a
server root (the URL, its principal, the calendar home), fewer from the principal or
the calendar, and MKCALENDAR carries the display name: no extra PROPFIND, no
PROPPATCH, no listing of a calendar just created. Discovery never takes our
credentials to another origin than the one configured. An endpoint that may not create
(``create=False``: ``purge``) raises ``TargetMissing`` where it would have made one.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urljoin

from lxml import etree

from klash_sync.deliver.caldav.pool import origin_of
from klash_sync.deliver.caldav.webdav import (
    CALDAV,
    DAV,
    DavClient,
    Entry,
    collection_of,
    path_of,
    same_path,
    self_entry,
)
from klash_sync.errors import TargetMissing, TargetProtocolError

log = logging.getLogger(__name__)

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


def slug(username: str, calendar: str) -> str:
    """A new calendar's path segment: the same for the same account and name, every time."""
    digest = hashlib.sha256(f"{username}\x00{calendar}".encode()).hexdigest()[:16]
    return f"klash-{digest}/"


class Discovery(DavClient):
    """``open()``: the calendar's collection URL, found (or created) once per calendar."""

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
        url = collection_of(self.endpoint.url)
        memo = (url, self.endpoint.username)
        named = (url, self.endpoint.username, self.endpoint.calendar)
        known = self.connections.collections.get(named)
        if known and not self.endpoint.create_here:
            self.collection_url = known
            return known
        home = None if self.endpoint.create_here else self.connections.homes.get(memo)
        first: list[Entry] | None = None
        if home is None:
            first = self._propfind(url, _PROBE_BODY, "1")
            this = self_entry(first, url) if first is not None else None
            if this is not None and this.calendar:
                self.collection_url = url
                self._prefetched = {e.href: e.etag for e in first or () if e is not this and not e.collection}
                return url
            if self.endpoint.create_here:
                if not self.endpoint.create:
                    raise TargetMissing(f"there is no calendar at {path_of(url)} on the embedded server")
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
            raise TargetProtocolError(f"the calendar home {path_of(home)} on {self._where()} does not exist")
        for entry in entries:
            if entry.calendar and not same_path(entry.href, home) and \
                    (entry.name or "") == self.endpoint.calendar:
                found = self._same_origin(urljoin(home, entry.href), "calendar")
                self.collection_url = collection_of(found)
                break
        else:
            if not self.endpoint.create:
                raise TargetMissing(f"there is no calendar {self.endpoint.calendar!r} on {self._where()}")
            log.info("creating calendar %r on %s", self.endpoint.calendar, self._where())
            target = urljoin(home, slug(self.endpoint.username, self.endpoint.calendar))
            self.collection_url = target
            if self._mkcalendar(target):
                self._prefetched = {}
        self.connections.collections[named] = self.collection_url
        return self.collection_url

    def _home(self, url: str, first: list[Entry] | None,
              this: Entry | None) -> tuple[str, list[Entry] | None]:
        """The calendar home, and its members when an answer already listed them.

        From the URL's own answer, or from its principal's: one more PROPFIND, at
        Depth 1, which also lists the home when the principal is the home (Radicale).
        """
        if first is None or this is None:
            raise TargetProtocolError(
                f"{path_of(url)} on {self._where()} is not a CalDAV address (nothing there); "
                "give the server's CalDAV URL, your principal URL or the calendar's URL")
        if this.home:
            home = self._same_origin(collection_of(urljoin(url, this.home)), "calendar home")
            return home, first if same_path(home, url) else None
        if not this.principal:
            raise TargetProtocolError(
                f"{path_of(url)} on {self._where()} names no principal and no calendar home; "
                "give your principal URL or the calendar's URL")
        principal = self._same_origin(collection_of(urljoin(url, this.principal)), "principal")
        answer = self._propfind(principal, _PROBE_BODY, "1")
        own = self_entry(answer, principal) if answer is not None else None
        if own is None or not own.home:
            raise TargetProtocolError(f"the principal {path_of(principal)} on {self._where()} "
                                      "names no calendar home")
        home = self._same_origin(collection_of(urljoin(principal, own.home)), "calendar home")
        return home, answer if same_path(home, principal) else None

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
        raise TargetProtocolError(f"creating the calendar at {path_of(url)} answered {response.status_code}")
