"""Optional parts of the installation (the package's extras) and the one-line error when one is missing.

``pip install verdict`` (or ``pip install .``) installs what ``verdict serve`` needs and nothing
more. The training and plotting stack, the PostgreSQL driver and the benchmark peers are extras
(``pyproject.toml``): ``[train]`` (``verdict train``, ``verdict models rebuild``), ``[plots]``
(``verdict monitor``'s figures), ``[otel]`` (OpenTelemetry traces, engine.tracing), ``[console]``
(``verdict console``), ``[postgres]`` (a decision log in PostgreSQL), ``[redis]`` (stateful features in
Redis, ``verdict serve --state redis://...``), ``[bench]`` (``verdict bench``), ``[batch]`` (Parquet:
``verdict batch``, ``verdict audit export``), ``[spark]`` (``--engine spark``) and ``[test]`` (the test suite).
Code that needs an extra imports its packages inside the function that uses them and calls
:func:`require` first, so a missing extra is one clear line (``MissingExtra``; the command line
prints it and exits 2), never a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

__all__ = ["EXTRAS", "MissingExtra", "require"]

# extra -> the top-level modules it provides (import names, not distribution names).
EXTRAS: Mapping[str, tuple[str, ...]] = {
    "train": ("lightgbm", "sklearn", "skl2onnx", "onnxmltools", "onnx", "matplotlib"),
    "postgres": ("psycopg",),
    "redis": ("redis",),
    "plots": ("matplotlib",),
    "otel": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.grpc"),
    "console": ("starlette", "uvicorn", "jinja2", "multipart", "argon2", "itsdangerous"),
    "bench": ("lightgbm", "sklearn", "skl2onnx", "onnxmltools", "onnx", "matplotlib", "zen"),
    "batch": ("pyarrow",),
    "spark": ("pyspark", "pandas", "pyarrow"),
}


class MissingExtra(ImportError):
    """A feature needs an extra that is not installed; the message says what to install."""

    code = "missing_extra"

    def __init__(self, what: str, extra: str, missing: tuple[str, ...]) -> None:
        self.what, self.extra, self.missing = what, extra, missing
        super().__init__(
            f"{what} needs the '{extra}' extra, which is not installed (missing: {', '.join(missing)}): "
            f"pip install 'verdict[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or hidden package counts as missing
        return False


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtra`` naming ``extra`` when any module of it cannot be imported; ``what`` names the feature."""
    missing = tuple(m for m in EXTRAS[extra] if not _installed(m))
    if missing:
        raise MissingExtra(what, extra, missing)
