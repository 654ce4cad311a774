"""A flow's routing file (``policies/<flow>/routing.yaml``) read, then checked against its versions.

Part of loading (``engine.policy.loader``): this module reads the file (schema errors with file and
line); the checks of what it says against the flow's versions (live, challenger and its routing
key, shadows) are ``engine.runtime.routing.check_routing``, with the rest of routing. What it
returns is what ``engine.runtime.routing.resolve`` resolves each request with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.errors import Problem
from engine.policy.documents import read_doc, relative, sha256_hex
from engine.policy.schema import RoutingFile
from engine.runtime.flow import CompiledFlow
from engine.runtime.routing import Routing, check_routing

__all__ = ["read_routing"]


def read_routing(
    root: Path, flow: str, versions: list[str], compiled: Mapping[str, CompiledFlow], problems: list[Problem], broken: set[str]
) -> Routing:
    """The flow's routing file, checked against its versions (``versions`` in ``version_key`` order:
    the newest is live without a file).

    A version in ``broken`` (its flow.yaml could not be read; that is reported already) is not
    reported again as missing.
    """
    path = root / "policies" / flow / "routing.yaml"
    if not path.is_file():
        return Routing(versions[-1] if versions else "")
    doc, parsed, raw = read_doc(root, path, RoutingFile, problems)
    if parsed is None or doc is None:
        return Routing("", revision=sha256_hex(raw))
    return check_routing(parsed, relative(root, path), doc.line_of, sha256_hex(raw), versions, compiled, problems, broken)
