"""YAML loading that remembers the line of every value, so errors can name file and line.

Errors are one plain sentence at the line to fix, with a hint (``engine.policy.yaml_messages``): PyYAML's
parser messages are translated, a key given twice names both lines, tags are refused, and the
YAML 1.1 number traps (``0742`` read as 482, ``1:30`` as 90) are refused with a hint to quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from engine.policy.yaml_messages import explain, number_trap

__all__ = ["LoadedYaml", "YamlSyntaxError", "load_yaml"]

Path_ = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The text is not valid YAML (or uses a construct we refuse, such as tags): one sentence, a line, a hint.

    ``code`` is ``yaml_syntax``, ``duplicate_key``, ``yaml_tag`` or ``yaml_number`` (a YAML 1.1 number trap).
    """

    def __init__(self, message: str, line: int | None, hint: str | None = None, code: str = "yaml_syntax") -> None:
        super().__init__(message)
        self.line = line
        self.hint = hint
        self.code = code


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    """Plain data plus the 1-based line of each location (a path of keys and indexes)."""

    data: Any
    lines: dict[Path_, int]

    def line_of(self, loc: Path_) -> int | None:
        """The line of `loc`, or of its nearest enclosing location that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that keeps YAML 1.2-ish booleans (no yes/no/on/off surprises for policy owners)."""


# YAML 1.1 reads `no` (Norway, or a "records: no" answer) as False; we only accept true/false.
_SafeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)

# Composing (scanning and parsing) in PyYAML's pure Python was ~70% of loading a flow with
# thousands of rules (issue 15.5); libyaml's parser (PyYAML's C extension, in PyYAML's wheels)
# builds the same nodes with the same marks ~10x faster. Same resolvers as _SafeLoader. A text it
# refuses is parsed again by the Python parser so that error messages stay PyYAML's, which
# ``engine.policy.yaml_messages`` translates. libyaml marks a plain scalar's style "" where Python has None.
_FAST_COMPOSER: type | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CSafeLoader(yaml.CSafeLoader):
        """libyaml's parser with _SafeLoader's implicit resolvers."""

    _CSafeLoader.yaml_implicit_resolvers = _SafeLoader.yaml_implicit_resolvers
    _FAST_COMPOSER = _CSafeLoader


def _compose(text: str) -> yaml.Node | None:
    if _FAST_COMPOSER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_COMPOSER)
        except yaml.YAMLError:
            pass  # the Python parser below raises the error with PyYAML's own message
    return yaml.compose(text, Loader=_SafeLoader)


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document into plain data with a line map; raises YamlSyntaxError."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        said = explain(exc, text)
        raise YamlSyntaxError(said.message, said.line, said.hint) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML cannot read this file: {exc}", None) from None
    if node is None:
        return LoadedYaml(data=None, lines={})
    lines: dict[Path_, int] = {}
    loader = _SafeLoader("")
    try:
        data = _build(node, (), lines, loader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        found = re.search(r"'([^']+)'", exc.problem or "")
        tag = " " + found.group(1).replace("tag:yaml.org,2002:", "!!") if found else ""
        raise YamlSyntaxError(f"the YAML tag{tag} is not allowed in policy files", mark.line + 1 if mark else None,
                              "remove the '!' tag; policy files hold plain keys, lists, text, numbers and true/false",
                              "yaml_tag") from None
    finally:
        loader.dispose()
    return LoadedYaml(data=data, lines=lines)


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise YamlSyntaxError("mapping keys must be plain scalars", key_node.start_mark.line + 1)
            if isinstance(key, bool) or not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                raise YamlSyntaxError(
                    f"the key {key!r} appears twice in the same block (first on line {lines[(*path, key)]})",
                    key_node.start_mark.line + 1, "remove one of them, or merge them into one", "duplicate_key",
                )
            child = (*path, key)
            out[key] = _build(value_node, child, lines, loader)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(node, yaml.ScalarNode) and not node.style:  # plain, unquoted (None in Python, "" in libyaml)
        trap = number_trap(node.value, value)
        if trap is not None:
            raise YamlSyntaxError(trap, node.start_mark.line + 1,
                                  f"write '{node.value}' in quotes if it is a code or a time; write the number without it if you mean a number",
                                  "yaml_number")
    return value
