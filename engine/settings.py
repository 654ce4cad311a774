"""The one settings object of Verdict, validated once at start-up.

Every setting is read here and nowhere else: first its default, then the environment variable
``VERDICT_<NAME>`` (e.g. ``VERDICT_PORT=50052``), then a command-line flag when one is given.
``Settings.load`` does the merge; the result is frozen.

| setting | env | default | meaning |
| --- | --- | --- | --- |
| host | VERDICT_HOST | 127.0.0.1 | address the gRPC server binds |
| port | VERDICT_PORT | 50051 | TCP port; 0 picks a free one (logged at start-up) |
| root | VERDICT_ROOT | the current directory if it holds policies/, else the bundled examples | directory holding policies/, rules/, model_artifacts/ |
| workers | VERDICT_WORKERS | 1 | server processes sharing the port (SO_REUSEPORT) |
| threads | VERDICT_THREADS | 16 | request threads per process |
| max_message_bytes | VERDICT_MAX_MESSAGE_BYTES | 65536 | largest request accepted |
| grace_seconds | VERDICT_GRACE_SECONDS | 10 | time in-flight calls get on SIGTERM/SIGINT |
| log_level | VERDICT_LOG_LEVEL | info | debug, info, warning, error |
| log_format | VERDICT_LOG_FORMAT | json | json (one JSON object a line, library warnings and stdlib log records included) or console |
| audit | VERDICT_AUDIT | audit | decision log directory (relative to the working directory); `off` disables |
| audit_dsn | VERDICT_AUDIT_DSN | (none) | PostgreSQL DSN of the decision log, used instead of the directory |
| audit_hash_key | VERDICT_AUDIT_HASH_KEY | (kept in DIR/hash.key) | key of keyed hashes (`sensitive: hash`) and request fingerprints; at least 32 bytes |
| audit_segment_bytes | VERDICT_AUDIT_SEGMENT_BYTES | 67108864 | size at which the log starts a new segment file |
| lists | VERDICT_LISTS | (the decision log directory) | directory of the custom lists' store (`custom_lists.sqlite`, docs/lists.md); `off` disables (every list is empty) |
| cases | VERDICT_CASES | auto | review-case store (docs/review-queue.md): a SQLite file path or a PostgreSQL DSN; `auto` = DIR/cases.db beside the decision log (its DSN with audit_dsn); `off` disables |
| idempotency_window_seconds | VERDICT_IDEMPOTENCY_WINDOW_SECONDS | 600 | a retry with the same request_id within it gets the stored decision; 0 disables |
| idempotency_max_entries | VERDICT_IDEMPOTENCY_MAX_ENTRIES | 100000 | request ids remembered at most (oldest forgotten first) |
| idempotency_max_bytes | VERDICT_IDEMPOTENCY_MAX_BYTES | 134217728 | estimated bytes the remembered decisions may hold (oldest forgotten first; docs/limits.md) |
| reload_interval | VERDICT_RELOAD_INTERVAL | 0.5 | seconds between checks of the root for changed policy files; 0 = only on SIGHUP |
| metrics_port | VERDICT_METRICS_PORT | (none) | serve Prometheus `/metrics` on this port (0 picks a free one); unset: no endpoint (docs/operations.md) |
| metrics_host | VERDICT_METRICS_HOST | 127.0.0.1 | address the `/metrics` endpoint binds (plain HTTP, no authentication) |
| otlp_endpoint | VERDICT_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT | (none: tracing off) | OTLP/gRPC collector the decision traces go to, e.g. `http://127.0.0.1:4317` (needs the `otel` extra; engine/tracing.py) |
| tls_cert | VERDICT_TLS_CERT | (none) | PEM certificate chain of the server; with tls_key the server speaks TLS only |
| tls_key | VERDICT_TLS_KEY | (none) | PEM private key of tls_cert |
| tls_client_ca | VERDICT_TLS_CLIENT_CA | (none) | PEM CA bundle; when set every client must present a certificate it signed (mutual TLS) |
| auth_tokens | VERDICT_AUTH_TOKENS | (none) | token file (`verdict auth add-token`): SHA-256 of each bearer token -> caller name |
| authz | VERDICT_AUTHZ | (none) | authorization file: callers -> flows they may Decide and admin methods (docs/security.md) |
| insecure | VERDICT_INSECURE | false | allow binding a non-loopback host without TLS (plaintext on the network) |
| state | VERDICT_STATE | state/state.db | histories of the flows' stateful features: an SQLite file (relative to the working directory) shared by every worker, or `memory` (one process, lost on stop; docs/behaviour.md) |

Security rules checked here: tls_cert and tls_key come together; tls_client_ca needs tls_cert;
authz needs a way to authenticate callers (tls_client_ca or auth_tokens); a host that is not a
loopback address needs TLS or an explicit ``insecure``. See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from engine.closed import Closed

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "bundled_root", "default_root", "is_loopback", "root_origin"]

ENV_PREFIX = "VERDICT_"
MIN_HASH_KEY_BYTES = 32


class SettingsError(ValueError):
    """A setting from the environment or the command line is invalid; names every bad one."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); a wildcard is not loopback."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bundled_root() -> Path:
    """The bundled example policies: the directory holding ``policies/`` next to the package.

    For an editable install (and a source checkout) that is the project root.
    """
    return Path(__file__).resolve().parent.parent


def default_root() -> Path:
    """The policy root when neither ``--root`` nor ``VERDICT_ROOT`` names one.

    The current directory when it holds ``policies/`` (so a command run inside a copy of the
    policies checks that copy), else the bundled examples (``bundled_root``). Absolute.
    """
    cwd = Path.cwd()
    if (cwd / "policies").is_dir():
        return cwd.resolve()
    return bundled_root()


def root_origin(flag: Path | str | None, env: Mapping[str, str] | None = None) -> str:
    """Where the policy root comes from, in words, by the precedence ``Settings.load`` applies.

    One of "--root", "VERDICT_ROOT", "the current directory" or "the bundled examples: no policies/
    in the current directory"; commands print it with the root on stderr.
    """
    env = os.environ if env is None else env
    if flag is not None:
        return "--root"
    if env.get(ENV_PREFIX + "ROOT"):
        return ENV_PREFIX + "ROOT"
    if (Path.cwd() / "policies").is_dir():
        return "the current directory"
    return "the bundled examples: no policies/ in the current directory"


class Settings(Closed):
    """Settings of the server and the commands; see the module docstring for the table."""

    host: str = Field("127.0.0.1", min_length=1, description="Address the gRPC server binds.")
    port: int = Field(50051, ge=0, le=65535, description="TCP port; 0 picks a free port.")
    root: Path = Field(
        default_factory=default_root,
        description="Directory holding policies/, rules/ and model_artifacts/.",
    )
    workers: int = Field(1, ge=1, le=256, description="Server processes sharing the port (SO_REUSEPORT).")
    threads: int = Field(16, ge=1, le=1024, description="Request-handling threads per server process.")
    max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request (serialized bytes) accepted; larger ones get RESOURCE_EXHAUSTED.",
    )
    grace_seconds: float = Field(
        10.0, ge=0, le=600, description="Seconds in-flight calls get to finish on SIGTERM/SIGINT."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    log_format: Literal["json", "console"] = Field(
        "json", description="json: one JSON object per line; console: human-readable, coloured."
    )

    audit: str = Field(
        "audit", min_length=1, description="Decision log directory (relative to the working directory); 'off' disables it."
    )
    audit_dsn: str | None = Field(None, description="PostgreSQL DSN of the decision log (replaces the directory).")
    audit_hash_key: SecretStr | None = Field(
        None,
        description="Key of keyed hashes and request fingerprints (at least 32 bytes); when unset, the key kept "
        "in the log directory's hash.key (random per process with PostgreSQL).",
    )
    audit_segment_bytes: int = Field(64 * 1024 * 1024, ge=4096, le=1 << 40, description="Segment file size limit.")
    lists: str | None = Field(
        None, description="Directory of the custom lists' store; unset: the decision log directory; 'off': no store."
    )
    cases: str = Field(
        "auto", min_length=1, description="Review-case store: SQLite path or PostgreSQL DSN; 'auto' beside the log; 'off' disables."
    )
    idempotency_window_seconds: float = Field(
        600.0, ge=0, le=7 * 24 * 3600, description="Retries with the same request_id within it get the stored decision."
    )
    idempotency_max_entries: int = Field(100_000, ge=1, le=10_000_000, description="Request ids remembered at most.")
    idempotency_max_bytes: int = Field(
        128 * 1024 * 1024, ge=1 << 20, le=1 << 40, description="Estimated bytes the remembered decisions may hold."
    )
    reload_interval: float = Field(
        0.5, ge=0, le=3600, description="Seconds between checks of the root for changes (hot reload); 0: only on SIGHUP."
    )
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint; None: none.")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="Address the /metrics endpoint binds (plain HTTP).")
    otlp_endpoint: str | None = Field(
        None, pattern=r"^https?://[^\s/]+/?$", max_length=512,
        description="OTLP/gRPC collector of the decision traces (http://host:port or https://host:port); None: tracing off.",
    )
    state: str = Field(
        "state/state.db", min_length=1, max_length=4096,
        description="SQLite file of the stateful features' histories (engine.state.sqlite), or 'memory'.",
    )

    @field_validator("audit_hash_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """A key shorter than 32 bytes (HMAC-SHA256's output size, RFC 2104 §3) is refused."""
        if value is not None and len(value.get_secret_value().encode("utf-8")) < MIN_HASH_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_HASH_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)")
        return value

    tls_cert: Path | None = Field(None, description="PEM certificate chain the server presents; with tls_key, TLS only.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle; every client must present a certificate signed by it (mutual TLS)."
    )
    auth_tokens: Path | None = Field(None, description="Token file: SHA-256 of each bearer token -> caller name.")
    authz: Path | None = Field(None, description="Authorization file: callers -> flows they may Decide and admin methods.")
    insecure: bool = Field(False, description="Allow binding a non-loopback host without TLS (plaintext on the network).")

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        """Refuse combinations that would serve less securely than the operator asked for."""
        problems = []
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key must be given together (--tls-cert, --tls-key)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            problems.append("tls_client_ca (mutual TLS) needs the server's own tls_cert and tls_key")
        if self.authz is not None and self.tls_client_ca is None and self.auth_tokens is None:
            problems.append("authz needs a way to know the caller: tls_client_ca (client certificates) or auth_tokens")
        if not is_loopback(self.host) and self.tls_cert is None and not self.insecure:
            problems.append(
                f"host {self.host!r} is not a loopback address: serve TLS (--tls-cert, --tls-key) "
                "or accept plaintext on the network explicitly with --insecure"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS."""
        return self.tls_cert is not None

    @property
    def audit_dir(self) -> Path | None:
        """The decision log directory, or None when the log is off (or goes to PostgreSQL)."""
        if self.audit_dsn or self.audit.strip().lower() in ("off", "none", "false", "0"):
            return None
        return Path(self.audit)

    @property
    def lists_dir(self) -> Path | None:
        """The custom lists' directory (``custom_lists.sqlite``, and ``hash.key`` unless the hash key is
        set): ``lists``, else the decision log directory; None when off or there is neither."""
        if self.lists is not None:
            return None if self.lists.strip().lower() in ("off", "none", "false", "0") else Path(self.lists)
        return self.audit_dir

    @property
    def cases_location(self) -> str | None:
        """Where review cases are kept (a path or DSN), or None when off (or ``auto`` without a log)."""
        text = self.cases.strip()
        if text.lower() in ("off", "none", "false", "0"):
            return None
        if text.lower() != "auto":
            return text
        if self.audit_dsn:
            return self.audit_dsn
        directory = self.audit_dir
        return str(directory / "cases.db") if directory is not None else None

    @property
    def address(self) -> str:
        """``host:port`` as gRPC binds it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Defaults, overridden by ``VERDICT_*`` variables of ``env``, overridden by non-None flags."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        unknown = set(flags) - set(cls.model_fields)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "otlp_endpoint" not in values:  # the OpenTelemetry SDK's standard variables (traces-specific first)
            standard = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            if standard:
                values["otlp_endpoint"] = standard
        values.update({k: v for k, v in flags.items() if v is not None})
        for name in ("log_level", "log_format"):  # INFO, Info and info are the same level
            if isinstance(values.get(name), str):
                values[name] = values[name].strip().lower()
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{err['loc'][0]} ({ENV_PREFIX}{str(err['loc'][0]).upper()}): {err['msg']}"
                if err["loc"]
                else str(err["msg"]).removeprefix("Value error, ")
                for err in exc.errors()
            )
            raise SettingsError(f"invalid settings: {problems}") from None
