"""Settings read from the environment once, at start, and validated with clear messages."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from service.alerts.rules import DEFAULT_SPIKE, SpikeRule
from service.gc_tuning import DEFAULT_GC_THRESHOLD


class SettingsError(ValueError):
    """A bad configuration value; the message names the variable and what is expected."""


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if not number > 0:
        raise SettingsError(f"{name} must be greater than 0, got {value!r}")
    return number


def _int(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value!r}")
    return number


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True, slots=True)
class XpayKey:
    """One xpay API key and the share of its limits this process may use."""

    key: str = field(repr=False)
    rpm: int | None
    concurrency: int | None


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    # The operator's webhook, when the environment names it (else the admin API may register one).
    operator_url: str | None = None
    operator_secret: str | None = field(default=None, repr=False)
    # Tenants' webhooks may reach loopback, private and link-local addresses only when this is set.
    allow_private_urls: bool = False
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    max_age_seconds: float = 86400.0
    poll_seconds: float = 1.0
    spike: SpikeRule = DEFAULT_SPIKE


@dataclass(frozen=True, slots=True)
class Settings:
    # None means: start an embedded Postgres in data_dir.
    database_url: str | None = None
    data_dir: Path = Path(".switchyard")
    admin_token: str | None = field(default=None, repr=False)

    baseten_api_key: str | None = field(default=None, repr=False)
    baseten_base_url: str = "https://inference.baseten.co/v1"
    xpay_api_key: str | None = field(default=None, repr=False)
    xpay_mcp_url: str = "https://mcp.xpay.sh/mcp"
    orthogonal_api_key: str | None = field(default=None, repr=False)
    orthogonal_base_url: str = "https://api.orth.sh/v1"

    timeouts: Timeouts = Timeouts()
    catalog_path: Path | None = None
    catalog_overrides_path: Path | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    # A request body that receives nothing for this long gets a 408 (nginx's client_body_timeout).
    body_timeout_seconds: float = 10.0
    max_attempts: int = 3
    max_fallback_seconds: float = 120.0

    # What Orthogonal's `priceCents` is worth in USD, when the operator knows it (100 or 100000);
    # unset, only an answer carrying both `price` and `priceCents` can tell.
    orthogonal_price_cents_unit: Decimal | None = None

    # How long `store: true` Responses are kept for `previous_response_id` (OpenAI keeps 30 days).
    responses_retention_days: int = 30

    xpay_rpm: int = 60
    xpay_concurrency: int = 10
    # A pool of xpay keys (XPAY_API_KEYS), each with its own limits; empty: XPAY_API_KEY alone.
    xpay_api_keys: tuple[XpayKey, ...] = field(default=(), repr=False)

    usage_queue_max: int = 100_000
    usage_flush_rows: int = 500
    usage_flush_seconds: float = 0.2
    usage_spill_path: Path | None = None  # the spill file of versions before the journal, replayed
    # The usage journal (service.metering.journal): an answer waits for its rows' fdatasync (sync:
    # they survive a machine crash; 0.17 ms p50 on this machine's disk when quiet), or only for their
    # write into the kernel (write: they survive kill -9 of any process, not a machine crash; for
    # disks whose fdatasync takes milliseconds); off only to measure what the journal costs.
    usage_journal: str = "sync"

    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 15.0

    alerts: AlertSettings = AlertSettings()

    metrics_tenant_cap: int = 100
    # When set, /metrics answers only `Authorization: Bearer <token>`.
    metrics_token: str | None = field(default=None, repr=False)
    # When set, `serve` exposes the metrics on this port alone and /metrics on the public port is 404.
    metrics_port: int | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # The serving workers' garbage-collector thresholds (service.gc_tuning); "700,10,10" is CPython's.
    gc_threshold: tuple[int, int, int] = DEFAULT_GC_THRESHOLD

    def xpay_keys(self) -> tuple[XpayKey, ...]:
        """Every xpay key this process calls with, and its limits (the capacity board's keys, in order)."""
        if self.xpay_api_keys:
            return self.xpay_api_keys
        if self.xpay_api_key:
            return (XpayKey(self.xpay_api_key, self.xpay_rpm, self.xpay_concurrency),)
        return ()

    def enabled_front_ends(self) -> list[str]:
        keys = {
            "baseten": self.baseten_api_key,
            "xpay": self.xpay_api_key or (self.xpay_api_keys[0].key if self.xpay_api_keys else None),
            "orthogonal": self.orthogonal_api_key,
        }
        return [name for name, key in keys.items() if key]

    def spill_path(self) -> Path:
        return self.usage_spill_path or (self.data_dir / "usage-spill.jsonl")

    def journal_dir(self) -> Path | None:
        return None if self.usage_journal == "off" else self.data_dir / "journal"

    def secret_values(self) -> list[str]:
        """The secrets' values, for the log redactor."""
        values = [getattr(self, name) for name in _SECRETS if getattr(self, name)]
        values += [k.key for k in self.xpay_api_keys]
        if self.alerts.operator_secret:
            values.append(self.alerts.operator_secret)
        return values


_SECRETS = {"admin_token", "metrics_token", "baseten_api_key", "xpay_api_key", "orthogonal_api_key"}


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build Settings from an environment mapping; raise SettingsError naming the bad variable."""
    env = dict(os.environ if env is None else env)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    kw: dict[str, object] = {}
    if (value := get("DATABASE_URL")) is not None:
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise SettingsError(f"DATABASE_URL must be a postgresql:// URL, got {_redact_url(value)!r}")
        kw["database_url"] = value.replace("postgresql+asyncpg://", "postgresql://", 1)
    if (value := get("SWITCHYARD_DATA_DIR")) is not None:
        kw["data_dir"] = Path(value)
    if (value := get("SWITCHYARD_ADMIN_TOKEN")) is not None:
        if len(value) < 16:
            raise SettingsError("SWITCHYARD_ADMIN_TOKEN must be at least 16 characters")
        kw["admin_token"] = value
    if (value := get("SWITCHYARD_METRICS_TOKEN")) is not None:
        if len(value) < 16:
            raise SettingsError("SWITCHYARD_METRICS_TOKEN must be at least 16 characters")
        kw["metrics_token"] = value
    if (value := get("SWITCHYARD_METRICS_PORT")) is not None:
        port = _int("SWITCHYARD_METRICS_PORT", value, 1)
        if port > 65535:
            raise SettingsError(f"SWITCHYARD_METRICS_PORT must be a TCP port (1-65535), got {value!r}")
        kw["metrics_port"] = port
    for key_var, url_var, key_field, url_field in (
        ("BASETEN_API_KEY", "BASETEN_BASE_URL", "baseten_api_key", "baseten_base_url"),
        ("XPAY_API_KEY", "XPAY_MCP_URL", "xpay_api_key", "xpay_mcp_url"),
        ("ORTHOGONAL_API_KEY", "ORTHOGONAL_BASE_URL", "orthogonal_api_key", "orthogonal_base_url"),
    ):
        if (value := get(key_var)) is not None:
            kw[key_field] = value
        if (value := get(url_var)) is not None:
            kw[url_field] = _url(url_var, value)

    kw["timeouts"] = Timeouts(
        connect=_positive_float("UPSTREAM_CONNECT_TIMEOUT", get("UPSTREAM_CONNECT_TIMEOUT") or "5"),
        first_byte=_positive_float("UPSTREAM_FIRST_BYTE_TIMEOUT", get("UPSTREAM_FIRST_BYTE_TIMEOUT") or "60"),
        total=_positive_float("UPSTREAM_TOTAL_TIMEOUT", get("UPSTREAM_TOTAL_TIMEOUT") or "600"),
    )
    if (value := get("SWITCHYARD_CATALOG")) is not None:
        kw["catalog_path"] = _existing_file("SWITCHYARD_CATALOG", value)
    if (value := get("SWITCHYARD_CATALOG_OVERRIDES")) is not None:
        kw["catalog_overrides_path"] = _existing_file("SWITCHYARD_CATALOG_OVERRIDES", value)
    ints = {
        "SWITCHYARD_MAX_BODY_BYTES": ("max_body_bytes", 1024),
        "SWITCHYARD_MAX_ATTEMPTS": ("max_attempts", 1),
        "XPAY_RPM": ("xpay_rpm", 1),
        "XPAY_CONCURRENCY": ("xpay_concurrency", 1),
        "USAGE_QUEUE_MAX": ("usage_queue_max", 100),
        "USAGE_FLUSH_ROWS": ("usage_flush_rows", 1),
        "METRICS_TENANT_CAP": ("metrics_tenant_cap", 1),
        "SWITCHYARD_BREAKER_FAILURES": ("breaker_failures", 1),
        "SWITCHYARD_RESPONSES_RETENTION_DAYS": ("responses_retention_days", 1),
    }
    for var, (name, minimum) in ints.items():
        if (value := get(var)) is not None:
            kw[name] = _int(var, value, minimum)
    floats = {
        "SWITCHYARD_MAX_FALLBACK_SECONDS": "max_fallback_seconds",
        "SWITCHYARD_BODY_TIMEOUT_SECONDS": "body_timeout_seconds",
        "USAGE_FLUSH_SECONDS": "usage_flush_seconds",
        "SWITCHYARD_BREAKER_COOLDOWN_SECONDS": "breaker_cooldown_seconds",
    }
    for var, name in floats.items():
        if (value := get(var)) is not None:
            kw[name] = _positive_float(var, value)
    if (value := get("XPAY_API_KEYS")) is not None:
        rpm, concurrency = kw.get("xpay_rpm", 60), kw.get("xpay_concurrency", 10)
        if not (isinstance(rpm, int) and isinstance(concurrency, int)):
            raise TypeError("XPAY_RPM and XPAY_CONCURRENCY are read as integers above")
        kw["xpay_api_keys"] = _xpay_keys(value, rpm, concurrency)
    if (value := get("ORTHOGONAL_PRICE_CENTS_UNIT")) is not None:
        if value not in ("100", "100000"):
            raise SettingsError(f"ORTHOGONAL_PRICE_CENTS_UNIT must be 100 (cents) or 100000, got {value!r}")
        kw["orthogonal_price_cents_unit"] = Decimal(value)
    if (value := get("USAGE_SPILL_PATH")) is not None:
        kw["usage_spill_path"] = Path(value)
    if (value := get("SWITCHYARD_USAGE_JOURNAL")) is not None:
        mode = value.strip().lower()
        if mode not in ("sync", "write", "off"):
            raise SettingsError(f"SWITCHYARD_USAGE_JOURNAL must be sync, write or off, got {value!r}")
        kw["usage_journal"] = mode
    if (value := get("LOG_LEVEL")) is not None:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
        kw["log_level"] = value.upper()
    if (value := get("LOG_JSON")) is not None:
        kw["log_json"] = _bool("LOG_JSON", value)
    if (value := get("SWITCHYARD_GC_THRESHOLD")) is not None:
        kw["gc_threshold"] = _gc_threshold(value)
    kw["alerts"] = _alert_settings(get)
    return Settings(**kw)  # type: ignore[arg-type]


def _gc_threshold(value: str) -> tuple[int, int, int]:
    parts = value.split(",")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or not all(1 <= n <= 10_000_000 for n in numbers):
        raise SettingsError(f"SWITCHYARD_GC_THRESHOLD must be three positive integers like 700,10,10, got {value!r}")
    return numbers[0], numbers[1], numbers[2]


def _decimal(name: str, value: str) -> Decimal:
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise SettingsError(f"{name} must be a decimal number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise SettingsError(f"{name} must be a non-negative decimal number, got {value!r}")
    return number


def _alert_settings(get: Callable[[str], str | None]) -> AlertSettings:
    kw: dict[str, object] = {}
    url, secret = get("SWITCHYARD_ALERT_WEBHOOK_URL"), get("SWITCHYARD_ALERT_WEBHOOK_SECRET")
    if url is not None:
        _url("SWITCHYARD_ALERT_WEBHOOK_URL", url)
        kw["operator_url"] = url  # as written: a receiver may tell `/hook` from `/hook/`
        if secret is None or len(secret) < 16:
            raise SettingsError("SWITCHYARD_ALERT_WEBHOOK_SECRET must be set (at least 16 characters) when"
                                " SWITCHYARD_ALERT_WEBHOOK_URL is: it signs every delivery")
        kw["operator_secret"] = secret
    if (value := get("SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS")) is not None:
        kw["allow_private_urls"] = _bool("SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS", value)
    for var, name in (
        ("SWITCHYARD_ALERT_TIMEOUT_SECONDS", "timeout_seconds"),
        ("SWITCHYARD_ALERT_RETRY_BASE_SECONDS", "retry_base_seconds"),
        ("SWITCHYARD_ALERT_RETRY_MAX_SECONDS", "retry_max_seconds"),
        ("SWITCHYARD_ALERT_MAX_AGE_SECONDS", "max_age_seconds"),
        ("SWITCHYARD_ALERT_POLL_SECONDS", "poll_seconds"),
    ):
        if (value := get(var)) is not None:
            kw[name] = _positive_float(var, value)
    spike = DEFAULT_SPIKE
    factor, min_usd = get("SWITCHYARD_ALERT_SPIKE_FACTOR"), get("SWITCHYARD_ALERT_SPIKE_MIN_USD")
    min_hours, window = get("SWITCHYARD_ALERT_SPIKE_MIN_HOURS"), get("SWITCHYARD_ALERT_SPIKE_WINDOW_HOURS")
    kw["spike"] = SpikeRule(
        factor=spike.factor if factor is None else _decimal("SWITCHYARD_ALERT_SPIKE_FACTOR", factor),
        min_usd=spike.min_usd if min_usd is None else _decimal("SWITCHYARD_ALERT_SPIKE_MIN_USD", min_usd),
        min_hours=(spike.min_hours if min_hours is None
                   else _int("SWITCHYARD_ALERT_SPIKE_MIN_HOURS", min_hours, 1)),
        window_hours=(spike.window_hours if window is None
                      else _int("SWITCHYARD_ALERT_SPIKE_WINDOW_HOURS", window, 1)),
    )
    return AlertSettings(**kw)  # type: ignore[arg-type]


def _xpay_keys(value: str, rpm: int, concurrency: int) -> tuple[XpayKey, ...]:
    """`key[:rpm[:concurrency]]`, comma-separated: each key with this process's share of its limits
    (XPAY_RPM and XPAY_CONCURRENCY where a key names none)."""
    keys = []
    for index, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        key, *limits = item.split(":")
        if not key or len(limits) > 2:
            raise SettingsError(f"XPAY_API_KEYS item {index + 1} must be key[:rpm[:concurrency]]")
        numbers = [_int(f"XPAY_API_KEYS item {index + 1}", n, 1) for n in limits]
        keys.append(XpayKey(key, numbers[0] if numbers else rpm, numbers[1] if len(numbers) > 1 else concurrency))
    if not keys:
        raise SettingsError("XPAY_API_KEYS names no key")
    return tuple(keys)


def _existing_file(name: str, value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise SettingsError(f"{name} must name an existing file, got {value!r}")
    return path
