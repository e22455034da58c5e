"""The CalDAV adapter: the only code that talks to CalDAV servers, one calendar at a time.

Every request is made by us, on connections shared across calendars and passes
(``pool``), because we need exact control over each of them:

* discovery (``discovery``) is our own walk, at most three PROPFINDs from a server
  root, and MKCALENDAR carries the display name; every request is counted in ``requests``;
* writes carry preconditions: ``If-None-Match: *`` to create, ``If-Match`` to update
  or delete, so a retried or racing write can never duplicate an event or overwrite a
  change we have not seen (a 412 is ``PreconditionFailed``: the caller re-reads);
* each write's target is checked to lie strictly inside the collection: a PUT to
  the collection itself replaces a whole calendar on Radicale;
* a no-op sync must cost one request, so listing is a single PROPFIND of ETags;
* redirects are not followed: credentials go only where the programme says (``webdav``).

HTTP failures are translated into the ``TargetError`` tree (``translate``), with a
one-line reason that says what happened ("connection refused", "timed out",
"redirected to ...") and never contains a credential.

``CalDAVCalendar`` here is discovery (``Discovery``) over the request layer
(``webdav.DavClient``), plus reading and writing. ``Endpoint``, ``PreconditionFailed``
and the helpers ``_slug`` and ``_inside`` are importable from here, as before the split.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from lxml import etree

from klash_sync.deliver.caldav.discovery import Discovery
from klash_sync.deliver.caldav.discovery import slug as _slug
from klash_sync.deliver.caldav.translate import short_body
from klash_sync.deliver.caldav.webdav import CALDAV, DAV, NS, Endpoint, inside, norm_href
from klash_sync.deliver.caldav.webdav import inside as _inside
from klash_sync.errors import PreconditionFailed, TargetConflict, TargetMissing, TargetProtocolError

__all__ = ["CalDAVCalendar", "Endpoint", "PreconditionFailed", "_inside", "_slug"]

_LIST_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'
)


class CalDAVCalendar(Discovery):
    """One calendar collection. Construct, ``open()``, then list, fetch and write."""

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
            raise TargetMissing(f"the calendar {url} no longer exists")
        if response.status_code != 207:
            raise TargetProtocolError(f"listing the calendar answered {response.status_code}")
        tree = self._xml(response, "PROPFIND")
        base = norm_href(url)
        found: dict[str, str | None] = {}
        is_calendar = False
        for entry in tree.findall("d:response", NS):
            href_el = entry.find("d:href", NS)
            if href_el is None or not href_el.text:
                continue
            href = norm_href(href_el.text.strip())
            if href.rstrip("/") == base.rstrip("/"):
                is_calendar = entry.find(".//d:resourcetype/c:calendar", NS) is not None
                continue
            if entry.find(".//d:resourcetype/d:collection", NS) is not None:
                continue
            etag_el = entry.find(".//d:getetag", NS)
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
        for entry in tree.findall("d:response", NS):
            href_el = entry.find("d:href", NS)
            data_el = entry.find(".//c:calendar-data", NS)
            if href_el is None or not href_el.text or data_el is None or data_el.text is None:
                continue
            etag_el = entry.find(".//d:getetag", NS)
            etag = etag_el.text.strip() if etag_el is not None and etag_el.text else None
            result[norm_href(href_el.text.strip())] = (etag, data_el.text.encode("utf-8"))
        return result

    # -------------------------------------------------------------- writing

    def _target(self, href: str) -> str:
        if self.readonly:
            raise TargetProtocolError(f"refusing to write {href!r}: this calendar was opened read-only")
        url = self.open()
        if not inside(url, href):
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
        detail = short_body(response)
        if what == "create" and status in (403, 409) and "trash" in detail.lower():
            raise TargetConflict(
                f"the server refuses to re-create {href}: an event with the same UID is in its "
                "trash bin (Nextcloud keeps deleted events there); empty the trash bin or restore it"
            )
        if status == 415:
            raise TargetProtocolError(f"{what} of {href} refused (415): the server rejects the event format")
        raise TargetProtocolError(f"{what} of {href} answered {status}{detail and ': ' + detail}")
