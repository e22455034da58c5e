"""Operator settings: ``KLASH_*`` environment variables, also read from a ``.env`` file.

Each field's description says what it does; the README's settings table and
``config/klash-sync.env.example`` list every field with its default, and
tests/system/test_words.py keeps all three in step. Secrets (``KLASH_SECRET``,
``KLASH_SMTP_PASSWORD``, ``KLASH_IMAP_PASSWORD``) are ``SecretStr`` so that they never appear in a repr, a log
line or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from klash_sync.errors import SettingsError


class Settings(BaseSettings):
    """Everything an operator can set. Defaults run the shipped programme on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="KLASH_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        frozen=True,
    )

    programme: Path = Field(
        default=Path("config/programme.toml"), description="The programme file to publish and sync."
    )
    state_dir: Path = Field(
        default=Path("var"),
        description="Where the state database and the embedded CalDAV storage live.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP server listens on (0.0.0.0 in a container).",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP server.")
    public_url: str = Field(
        default="",
        description="Base URL under which people reach this server, e.g. https://klash.example.fi; "
        "used in feed links and in events' links to the page (events get no page link without "
        "it). Default: http://HOST:PORT.",
    )
    embedded_caldav: bool = Field(
        default=True,
        description="Serve a CalDAV server at /dav/ for mentors without a caldav entry.",
    )
    sync_interval: int = Field(
        default=300, ge=5, description="Seconds between periodic syncs of every calendar."
    )
    sync_workers: int = Field(
        default=16, ge=1, le=64, description="Calendars synced at the same time."
    )
    sync_per_host: int = Field(
        default=8, ge=1, le=64,
        description="Calendars synced at the same time on one server (and its connection pool size).",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a CalDAV server before giving up."
    )
    debounce: float = Field(
        default=1.0, ge=0, description="Seconds to wait after a programme edit before applying it."
    )
    retry_max: float = Field(
        default=900.0, gt=0, description="Longest pause, in seconds, between retries of a failing calendar."
    )
    unhealthy_after: int = Field(
        default=1800, gt=0,
        description="Seconds a calendar may keep failing before /healthz answers 503.",
    )
    stop_timeout: float = Field(
        default=10.0, ge=1, le=600,
        description="Seconds SIGTERM may take: deliveries still running then are abandoned and "
        "repeated at the next start. Give systemd or Docker a few seconds more.",
    )
    request_max_age: float = Field(
        default=300.0, ge=10, le=3600,
        description="Seconds an operator command's request to the running daemon stays valid: "
        "an older one is refused and never carried out.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as readable text or as one JSON object each."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe log level written."
    )
    private_feeds: bool = Field(
        default=False,
        description="Serve per-mentor feeds only at secret addresses (needs KLASH_SECRET).",
    )
    public_feeds: bool = Field(
        default=True, description="Serve the whole-programme and municipality feeds."
    )
    site_dir: Path | None = Field(
        default=None,
        description="A folder (a symlink, swapped atomically) where `run` publishes every feed "
        "and the page after each change, as `export --all` does, for nginx, a CDN or object "
        "storage to serve.",
    )
    secret: SecretStr | None = Field(
        default=None, description="Server secret for private feed addresses (or KLASH_SECRET_FILE)."
    )
    secret_file: Path | None = Field(
        default=None, description="File holding the server secret (Docker/systemd secrets)."
    )

    smtp_url: str = Field(
        default="",
        description="SMTP server for e-mail invitations: smtp://host:587 (STARTTLS) or "
        "smtps://host:465. Empty: invitations are not sent.",
    )
    smtp_tls: Literal["auto", "none"] = Field(
        default="auto",
        description="'none' allows smtp:// without TLS to a host other than loopback.",
    )
    smtp_username: str = Field(default="", description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (or KLASH_SMTP_PASSWORD_FILE)."
    )
    smtp_password_file: Path | None = Field(
        default=None, description="File holding the SMTP password (Docker/systemd secrets)."
    )
    organiser_password: SecretStr | None = Field(
        default=None,
        description="Password of the organisers' view (/organisers: who answered what, and its "
        "Atom feed), any user name; or KLASH_ORGANISER_PASSWORD_FILE. Unset: the view is off (404).",
    )
    organiser_password_file: Path | None = Field(
        default=None, description="File holding the organisers' password (Docker/systemd secrets)."
    )
    invite_delay: float = Field(
        default=120.0, ge=0,
        description="Seconds the programme must be quiet before invitations go out, so that "
        "quick edits make one message.",
    )

    imap_url: str = Field(
        default="",
        description="The organiser's mailbox where mentors' answers arrive: "
        "imaps://user@host[:port]/Folder, or imap://user@host[:port]/Folder (STARTTLS, required "
        "unless the host is loopback). Empty: answers by e-mail are not read.",
    )
    imap_password: SecretStr | None = Field(
        default=None, description="IMAP password (or KLASH_IMAP_PASSWORD_FILE)."
    )
    imap_password_file: Path | None = Field(
        default=None, description="File holding the IMAP password (Docker/systemd secrets)."
    )
    imap_interval: int = Field(
        default=120, ge=5, description="Seconds between reads of the mailbox."
    )
    imap_move_to: str = Field(
        default="",
        description="A folder to move each counted answer to (it must exist). Empty: mail is "
        "never moved, deleted or marked.",
    )
    imap_max_bytes: int = Field(
        default=2_000_000, ge=10_000,
        description="Messages larger than this are ignored without being downloaded.",
    )
    imap_authserv_id: str = Field(
        default="",
        description="The authserv-id the organiser's own mail system writes in "
        "Authentication-Results; when the topmost such header is its, a reply must pass DMARC, "
        "or DKIM or SPF when it has no DMARC result.",
    )
    decline_mail: bool = Field(
        default=True,
        description="Mail the organiser at once when a mentor declines within 48 hours of a "
        "session (needs KLASH_SMTP_URL and organiser_email).",
    )

    @field_validator("site_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """The public base URL, or the listening address when none is set."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def event_base_url(self) -> str | None:
        """The address put into events' page links: only a configured public one."""
        return self.public_url or None

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.sqlite3"

    def server_secret(self) -> bytes | None:
        """The private-feed secret from KLASH_SECRET or KLASH_SECRET_FILE, if any."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        if self.secret_file is not None:
            try:
                return self.secret_file.read_bytes().strip()
            except OSError as e:
                raise SettingsError(
                    f"KLASH_SECRET_FILE: cannot read {self.secret_file} ({e.strerror})"
                ) from None
        return None


    def smtp_secret(self) -> str | None:
        """The SMTP password from KLASH_SMTP_PASSWORD or KLASH_SMTP_PASSWORD_FILE, if any."""
        if self.smtp_password is not None:
            return self.smtp_password.get_secret_value()
        if self.smtp_password_file is not None:
            try:
                return self.smtp_password_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise SettingsError(
                    f"KLASH_SMTP_PASSWORD_FILE: cannot read {self.smtp_password_file} ({e.strerror})"
                ) from None
        return None

    def imap_secret(self) -> str | None:
        """The IMAP password from KLASH_IMAP_PASSWORD or KLASH_IMAP_PASSWORD_FILE, if any."""
        if self.imap_password is not None:
            return self.imap_password.get_secret_value()
        if self.imap_password_file is not None:
            try:
                return self.imap_password_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise SettingsError(
                    f"KLASH_IMAP_PASSWORD_FILE: cannot read {self.imap_password_file} ({e.strerror})"
                ) from None
        return None


    def organiser_secret(self) -> str | None:
        """The organisers' password from KLASH_ORGANISER_PASSWORD or its _FILE, if any."""
        if self.organiser_password is not None:
            return self.organiser_password.get_secret_value() or None
        if self.organiser_password_file is not None:
            try:
                return self.organiser_password_file.read_text(encoding="utf-8").strip() or None
            except OSError as e:
                raise SettingsError(
                    f"KLASH_ORGANISER_PASSWORD_FILE: cannot read {self.organiser_password_file} "
                    f"({e.strerror})"
                ) from None
        return None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with CLI overrides; bad values become a SettingsError."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as e:
        lines = []
        for err in e.errors():
            name = "KLASH_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"setting {name}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
