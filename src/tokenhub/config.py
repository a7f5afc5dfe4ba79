"""Settings, read once from the environment (``TOKENHUB_*``).

Nothing here is mutable after start: the app factory takes a ``Settings`` and everything else
hangs off the app, so two gateways can live in one test process.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from tokenhub.money import usd_to_nanos


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, got {raw!r}") from None


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


Number = TypeVar("Number", int, float)


def _positive(name: str, value: Number) -> Number:
    if value <= 0:
        raise SystemExit(f"{name} must be more than 0, got {value}")
    return value


def _log_format(value: str) -> str:
    value = value.strip().lower()
    if value not in ("json", "text"):
        raise SystemExit(f"TOKENHUB_LOG_FORMAT must be json or text, got {value!r}")
    return value


def _trusted_proxies(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``TOKENHUB_TRUSTED_PROXIES``: comma-separated IPs or CIDRs of the proxies whose X-Forwarded-For is believed."""
    networks = []
    for item in raw.split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise SystemExit(f"TOKENHUB_TRUSTED_PROXIES must list IP addresses or CIDRs, got {item.strip()!r}") from None
    return tuple(networks)


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _email_settings(env: dict[str, str]) -> tuple[str | None, str | None, str]:
    """(public_url, smtp_url, signup_verify), checked together: links in emails need an address the operator chose,
    and required verification needs a way to send the link."""
    public_url = (env.get("TOKENHUB_PUBLIC_URL") or "").strip().rstrip("/") or None
    smtp_url = (env.get("TOKENHUB_SMTP_URL") or "").strip() or None
    verify = _choice(env, "TOKENHUB_SIGNUP_VERIFY", ("required", "optional", "off"), "optional")
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SystemExit(f"TOKENHUB_PUBLIC_URL must be an http:// or https:// address, got {public_url!r}")
    if smtp_url is not None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SystemExit("TOKENHUB_SMTP_URL must look like smtp://user:pass@host:port or smtps://user:pass@host:port")
        if public_url is None:  # a link built from the request's Host header could point at a host the client chose
            raise SystemExit("TOKENHUB_SMTP_URL needs TOKENHUB_PUBLIC_URL (the console's public address, for links in emails)")
    if verify == "required" and smtp_url is None:
        raise SystemExit(
            "TOKENHUB_SIGNUP_VERIFY=required needs TOKENHUB_SMTP_URL: without email nobody could verify an address "
            "(configure SMTP, or set TOKENHUB_SIGNUP_VERIFY=optional or off)"
        )
    return public_url, smtp_url, verify


def _usd_nanos(env: dict[str, str], name: str) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return 0
    try:
        nanos = usd_to_nanos(raw)
    except (ValueError, ArithmeticError):
        raise SystemExit(f"{name} must be an amount of USD such as 1 or 0.50, got {raw!r}") from None
    if nanos < 0:
        raise SystemExit(f"{name} must not be negative, got {raw!r}")
    return nanos


@dataclass(frozen=True)
class OidcProvider:
    """A sign-in provider: an OpenID Connect issuer (``kind="oidc"``), or GitHub's OAuth (``kind="github"``)."""

    name: str  # lower case: the callback is /auth/<name>/callback
    kind: str
    client_id: str
    client_secret: str
    issuer: str = ""  # OIDC only: its /.well-known/openid-configuration says the rest


def _sign_in_providers(env: dict[str, str]) -> tuple[OidcProvider, ...]:
    """``TOKENHUB_OIDC_PROVIDERS=name,…`` with ``TOKENHUB_OIDC_<NAME>_ISSUER|_CLIENT_ID|_CLIENT_SECRET``, and GitHub
    when ``TOKENHUB_GITHUB_CLIENT_ID`` / ``_CLIENT_SECRET`` are set."""
    providers: list[OidcProvider] = []
    for raw in (env.get("TOKENHUB_OIDC_PROVIDERS") or "").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name) or name == "github":
            raise SystemExit(f"TOKENHUB_OIDC_PROVIDERS: {raw.strip()!r} is not a usable name (letters, digits, - and _; not github)")
        prefix = f"TOKENHUB_OIDC_{name.upper().replace('-', '_')}_"
        values = {part: (env.get(prefix + part) or "").strip() for part in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")}
        missing = [prefix + part for part, value in values.items() if not value]
        if missing:
            raise SystemExit(f"sign-in provider {name}: set {', '.join(missing)}")
        issuer = values["ISSUER"].rstrip("/")
        if not issuer.startswith(("https://", "http://")):
            raise SystemExit(f"{prefix}ISSUER must be an https:// URL, got {issuer!r}")
        providers.append(OidcProvider(name, "oidc", values["CLIENT_ID"], values["CLIENT_SECRET"], issuer))
    github_id = (env.get("TOKENHUB_GITHUB_CLIENT_ID") or "").strip()
    github_secret = (env.get("TOKENHUB_GITHUB_CLIENT_SECRET") or "").strip()
    if bool(github_id) != bool(github_secret):
        raise SystemExit("sign-in with GitHub: set both TOKENHUB_GITHUB_CLIENT_ID and TOKENHUB_GITHUB_CLIENT_SECRET")
    if github_id:
        providers.append(OidcProvider("github", "github", github_id, github_secret))
    if len({p.name for p in providers}) != len(providers):
        raise SystemExit("TOKENHUB_OIDC_PROVIDERS names a provider twice")
    return tuple(providers)


def normalize_database_url(url: str) -> str:
    """Accept the URL forms operators write and pick the async driver for each."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    return url


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    secret_key: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    refresh_interval: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 300.0  # until the upstream's response headers (a channel's first_byte_timeout overrides)
    idle_timeout: float = 300.0  # the longest gap between two chunks of an upstream body (per channel: idle_timeout)
    redis_url: str | None = None  # rate limits shared by every process (limits/redis_rates.py)
    log_format: str = "json"  # json | text
    hold_sweep_after: float = 60.0
    drain_timeout: float = 30.0  # SIGTERM: requests in flight get this long, then open streams are cut (relay/inflight.py)
    fetch_allow_private: bool = False  # let image URLs reach private addresses (tests, closed networks)
    task_poll_base: float = 2.0  # seconds to the first poll of a video task; doubles per poll, up to 30 s
    task_timeout: float = 2 * 3600.0  # an open video task older than this fails and is refunded
    stripe_secret_key: str | None = None  # top-ups through Stripe Checkout (billing/payments.py)
    stripe_webhook_secret: str | None = None  # whsec_...: webhooks are refused while unset
    # Proxies whose X-Forwarded-For names the client (console login throttling); none by default.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    header_timeout: float = 10.0  # a client must send a request's headers within this (also: idle keep-alive connections)
    body_timeout: float = 30.0  # ... and its body within this, plus body_min_rate's allowance for its size
    body_min_rate: int = 100_000  # bytes per second a large body is allowed on top of body_timeout
    # The console as the public reaches it (https://console.example.com): links in emails and the sign-in
    # providers' redirect URI. Unset: the address the browser used (and http://127.0.0.1:8000 from the CLI).
    public_url: str | None = None
    smtp_url: str | None = None  # smtp://user:pass@host:port (STARTTLS where offered) or smtps://…: emails
    mail_from: str | None = None  # the From of every email
    signup: str = "open"  # open | invite (an admin's single-use link) | closed
    signup_verify: str = "optional"  # required | optional | off: verify the email address at sign-up
    signup_bonus_nanos: int = 0  # credit given to each new account, as a ledger entry
    sign_in_providers: tuple[OidcProvider, ...] = ()  # GitHub and OpenID Connect issuers
    github_url: str = "https://github.com"  # GitHub Enterprise Server: https://github.example.com
    github_api_url: str = "https://api.github.com"  # ... and https://github.example.com/api/v3
    require_admin_2fa: bool = False  # admins must turn on two-factor sign-in before using the console
    upstream_env: dict[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("TOKENHUB_HOME") or Path.home() / ".tokenhub").expanduser()
        db_url = env.get("TOKENHUB_DATABASE_URL") or f"sqlite:///{home / 'tokenhub.db'}"
        public_url, smtp_url, signup_verify = _email_settings(env)
        return cls(
            home=home,
            database_url=normalize_database_url(db_url),
            secret_key=env.get("TOKENHUB_SECRET_KEY") or None,
            admin_email=env.get("TOKENHUB_ADMIN_EMAIL") or None,
            admin_password=env.get("TOKENHUB_ADMIN_PASSWORD") or None,
            max_body_bytes=_env_int(env, "TOKENHUB_MAX_BODY_BYTES", 32 * 1024 * 1024),
            refresh_interval=_env_float(env, "TOKENHUB_REFRESH_INTERVAL", 1.0),
            connect_timeout=_env_float(env, "TOKENHUB_CONNECT_TIMEOUT", 10.0),
            read_timeout=_env_float(env, "TOKENHUB_FIRST_BYTE_TIMEOUT", _env_float(env, "TOKENHUB_READ_TIMEOUT", 300.0)),
            idle_timeout=_env_float(env, "TOKENHUB_IDLE_TIMEOUT", 300.0),
            redis_url=(env.get("TOKENHUB_REDIS_URL") or "").strip() or None,
            log_format=_log_format(env.get("TOKENHUB_LOG_FORMAT") or "json"),
            hold_sweep_after=_env_float(env, "TOKENHUB_HOLD_SWEEP_AFTER", 60.0),
            drain_timeout=_env_float(env, "TOKENHUB_DRAIN_TIMEOUT", 30.0),
            fetch_allow_private=env.get("TOKENHUB_FETCH_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"),
            task_poll_base=_env_float(env, "TOKENHUB_TASK_POLL_BASE", 2.0),
            task_timeout=_env_float(env, "TOKENHUB_TASK_TIMEOUT", 2 * 3600.0),
            stripe_secret_key=(env.get("TOKENHUB_STRIPE_SECRET_KEY") or "").strip() or None,
            stripe_webhook_secret=(env.get("TOKENHUB_STRIPE_WEBHOOK_SECRET") or "").strip() or None,
            trusted_proxies=_trusted_proxies(env.get("TOKENHUB_TRUSTED_PROXIES") or ""),
            header_timeout=_positive("TOKENHUB_HEADER_TIMEOUT", _env_float(env, "TOKENHUB_HEADER_TIMEOUT", 10.0)),
            body_timeout=_positive("TOKENHUB_BODY_TIMEOUT", _env_float(env, "TOKENHUB_BODY_TIMEOUT", 30.0)),
            body_min_rate=_positive("TOKENHUB_BODY_MIN_RATE", _env_int(env, "TOKENHUB_BODY_MIN_RATE", 100_000)),
            public_url=public_url,
            smtp_url=smtp_url,
            mail_from=(env.get("TOKENHUB_MAIL_FROM") or "").strip() or None,
            signup=_choice(env, "TOKENHUB_SIGNUP", ("open", "invite", "closed"), "open"),
            signup_verify=signup_verify,
            signup_bonus_nanos=_usd_nanos(env, "TOKENHUB_SIGNUP_BONUS"),
            sign_in_providers=_sign_in_providers(env),
            github_url=(env.get("TOKENHUB_GITHUB_URL") or "").strip().rstrip("/") or "https://github.com",
            github_api_url=(env.get("TOKENHUB_GITHUB_API_URL") or "").strip().rstrip("/") or "https://api.github.com",
            require_admin_2fa=env.get("TOKENHUB_REQUIRE_ADMIN_2FA", "").lower() in ("1", "true", "yes"),
            upstream_env={
                k: v
                for k, v in env.items()
                if k.endswith(("_API_KEY", "_ACCESS_KEY", "_SECRET_KEY")) and not k.startswith("TOKENHUB_") and v
            },
        )
