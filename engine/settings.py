"""The one settings object of Verdict, validated once at start-up.

Every setting is read here and nowhere else: first its default, then the environment variable
``VERDICT_<NAME>`` (e.g. ``VERDICT_PORT=50052``), then a command-line flag when one is given.
``Settings.load`` does the merge; the result is frozen.

| setting | env | default | meaning |
| --- | --- | --- | --- |
| host | VERDICT_HOST | 127.0.0.1 | address the gRPC server binds |
| port | VERDICT_PORT | 50051 | TCP port; 0 picks a free one (logged at start-up) |
| root | VERDICT_ROOT | the bundled root | directory holding policies/, rules/, model_artifacts/ |
| workers | VERDICT_WORKERS | 1 | server processes sharing the port (SO_REUSEPORT) |
| threads | VERDICT_THREADS | 16 | request threads per process |
| max_message_bytes | VERDICT_MAX_MESSAGE_BYTES | 65536 | largest request accepted |
| grace_seconds | VERDICT_GRACE_SECONDS | 10 | time in-flight calls get on SIGTERM/SIGINT |
| log_level | VERDICT_LOG_LEVEL | info | debug, info, warning, error |
| log_format | VERDICT_LOG_FORMAT | json | json (one JSON object a line) or console |
| audit | VERDICT_AUDIT | audit | decision log directory (relative to the working directory); `off` disables |
| audit_dsn | VERDICT_AUDIT_DSN | (none) | PostgreSQL DSN of the decision log, used instead of the directory |
| audit_hash_key | VERDICT_AUDIT_HASH_KEY | (kept in DIR/hash.key) | key of keyed hashes (`sensitive: hash`) and request fingerprints; at least 32 bytes |
| audit_segment_bytes | VERDICT_AUDIT_SEGMENT_BYTES | 67108864 | size at which the log starts a new segment file |
| idempotency_window_seconds | VERDICT_IDEMPOTENCY_WINDOW_SECONDS | 600 | a retry with the same request_id within it gets the stored decision; 0 disables |
| idempotency_max_entries | VERDICT_IDEMPOTENCY_MAX_ENTRIES | 100000 | request ids remembered at most (oldest forgotten first) |
| reload_interval | VERDICT_RELOAD_INTERVAL | 0.5 | seconds between checks of the root for changed policy files; 0 = only on SIGHUP |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "default_root"]

ENV_PREFIX = "VERDICT_"
MIN_HASH_KEY_BYTES = 32


class SettingsError(ValueError):
    """A setting from the environment or the command line is invalid; names every bad one."""


def default_root() -> Path:
    """The bundled policy root: the directory holding ``policies/`` next to the package.

    For an editable install (and a source checkout) that is the project root. Falls back to the
    current directory when it holds ``policies/`` and the package's parent does not.
    """
    beside_package = Path(__file__).resolve().parent.parent
    if (beside_package / "policies").is_dir():
        return beside_package
    cwd = Path.cwd()
    if (cwd / "policies").is_dir():
        return cwd
    return beside_package


class Settings(BaseModel):
    """Settings of the server and the commands; see the module docstring for the table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    idempotency_window_seconds: float = Field(
        600.0, ge=0, le=7 * 24 * 3600, description="Retries with the same request_id within it get the stored decision."
    )
    idempotency_max_entries: int = Field(100_000, ge=1, le=10_000_000, description="Request ids remembered at most.")
    reload_interval: float = Field(
        0.5, ge=0, le=3600, description="Seconds between checks of the root for changes (hot reload); 0: only on SIGHUP."
    )

    @field_validator("audit_hash_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """A key shorter than 32 bytes (HMAC-SHA256's output size, RFC 2104 §3) is refused."""
        if value is not None and len(value.get_secret_value().encode("utf-8")) < MIN_HASH_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_HASH_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def audit_dir(self) -> Path | None:
        """The decision log directory, or None when the log is off (or goes to PostgreSQL)."""
        if self.audit_dsn or self.audit.strip().lower() in ("off", "none", "false", "0"):
            return None
        return Path(self.audit)

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
        values.update({k: v for k, v in flags.items() if v is not None})
        for name in ("log_level", "log_format"):  # INFO, Info and info are the same level
            if isinstance(values.get(name), str):
                values[name] = values[name].strip().lower()
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{err['loc'][0]} ({ENV_PREFIX}{str(err['loc'][0]).upper()}): {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid settings: {problems}") from None
