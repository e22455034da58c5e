"""Where the page's own links point: under the path of KLASH_PUBLIC_URL, with the language.

Behind a reverse proxy at a sub-path (``https://kunnat.example.fi/klash``) a link to
``/mentors/…`` would leave the app, so every link the pages make comes from here and
starts with the public URL's path. The served site names a language with ``?lang=``;
a static export (``export --all``) has one file per page and language instead, because
a plain web server ignores the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_LANG = "fi"


@dataclass(frozen=True)
class Links:
    """Builds the paths of the pages, the Atom feed and the language variants."""

    prefix: str = ""  # the public URL's path without a trailing slash: "" or "/klash"
    static: bool = False

    @classmethod
    def for_base(cls, base_url: str, *, static: bool = False) -> Links:
        return cls(urlsplit(base_url).path.rstrip("/"), static)

    def page(self, lang: str, mentor_id: str | None = None, token: str | None = None) -> str:
        """The programme page (no mentor) or a mentor's page, in ``lang``."""
        if self.static:
            name = "index" if mentor_id is None else f"mentors/{quote(mentor_id)}"
            return f"{self.prefix}/{name}{self.suffix(lang)}.html"
        if mentor_id is None:
            path = "/"
        else:
            path = f"/mentors/{quote(mentor_id)}" + (f"/{quote(token)}" if token else "")
        return f"{self.prefix}{path}?lang={lang}"

    def atom(self, lang: str) -> str:
        if self.static:
            return f"{self.prefix}/changes{self.suffix(lang)}.atom"
        return f"{self.prefix}/changes.atom?lang={lang}"

    @staticmethod
    def suffix(lang: str) -> str:
        """The file-name part of a language in a static export: none for the default one."""
        return "" if lang == DEFAULT_LANG else f".{lang}"
