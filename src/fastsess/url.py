"""Database URLs: parsing, and a printable form with the password censored."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import InvalidURL

# scheme -> dialect name
SCHEMES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
CENSORED = "***"
# Query arguments that carry a secret (passed on to the driver's connect).
SECRET_ARGS = frozenset({"password", "passwd", "sslpassword"})


def supported_schemes() -> str:
    return ", ".join(f"{s}://" for s in SCHEMES)


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL.  ``str()`` and ``repr()`` never show the password."""

    dialect: str
    scheme: str
    host: str | None
    port: int | None
    username: str | None
    password: str | None = field(repr=False)
    database: str
    query: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str | "DatabaseURL") -> "DatabaseURL":
        if isinstance(url, DatabaseURL):
            return url
        if not isinstance(url, str):
            raise TypeError(f"database URL must be a str, got {type(url).__name__}")
        # Never put the raw URL in a message: it may carry the password.
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in SCHEMES:
            shown = scheme or "(none)"
            raise InvalidURL(
                f"unsupported database URL scheme {shown!r}; supported: {supported_schemes()}"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise InvalidURL(f"malformed {scheme}:// URL: {_scrub(str(e), url)}") from None
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(
            dialect=SCHEMES[scheme],
            scheme=scheme,
            host=unquote(parts.hostname) if parts.hostname else None,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            database=unquote(parts.path.lstrip("/")),
            query=query,
        )

    def censored(self) -> str:
        """The URL as text with the password replaced by ``***``."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + CENSORED
            auth += "@"
        host = self.host or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        query = "&".join(f"{k}={CENSORED if k in SECRET_ARGS else v}" for k, v in self.query.items())
        return f"{self.scheme}://{auth}{host}{port}/{self.database}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.censored()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.censored()!r})"

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of this URL's passwords censored."""
        secrets = [self.password] + [v for k, v in self.query.items() if k in SECRET_ARGS]
        for secret in secrets:
            if secret:
                text = text.replace(secret, CENSORED)
                quoted = quote(secret, safe="")
                if quoted != secret:
                    text = text.replace(quoted, CENSORED)
        return text


def _scrub(text: str, url: str) -> str:
    """Censor whatever looks like the password of ``url`` in ``text``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, CENSORED)
    return text
