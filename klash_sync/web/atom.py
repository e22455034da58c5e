"""The change log as an Atom feed (RFC 4287), for mentors who follow news, not calendars.

Built with ElementTree, which escapes every text; entry ids are stable tag URIs made
from the programme's uid_domain and the change's sequence number.
"""

from __future__ import annotations

from datetime import UTC
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from klash_sync.render.changes import change_text
from klash_sync.render.snapshot import Snapshot
from klash_sync.state.records import Change
from klash_sync.web.links import Links

ATOM = "http://www.w3.org/2005/Atom"


def atom(snapshot: Snapshot, changes: list[Change], lang: str, base_url: str,
         links: Links | None = None) -> bytes:
    """The feed in ``lang``; its links are absolute, made from ``base_url`` and ``links``."""
    links = links or Links.for_base(base_url)
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    ET.register_namespace("", ATOM)
    domain = snapshot.programme.programme.uid_domain
    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": lang})
    title = {"fi": "Muutokset", "sv": "Ändringar"}.get(lang, "What changed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = f"{snapshot.programme.programme.name}: {title}"
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"tag:{domain},2019:changes"
    # Without changes, when the feeds last changed: stable across reloads and exports.
    newest = changes[0].at if changes else max(
        (f.last_modified for f in snapshot.feeds.values()), default=snapshot.loaded_at)
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = newest.astimezone(UTC).isoformat()
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "href": origin + links.page(lang)})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "href": origin + links.atom(lang)})
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = snapshot.programme.programme.organiser
    for change in changes:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        text = change_text(change, lang)
        ET.SubElement(entry, f"{{{ATOM}}}title").text = text
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"tag:{domain},2019:change/{change.seq}"
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = change.at.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}link", {"href": f"{origin}{links.page(lang)}#{change.session}"})
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = text
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body
