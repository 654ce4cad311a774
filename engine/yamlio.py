"""YAML loading that remembers the line of every value, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["LoadedYaml", "YamlSyntaxError", "load_yaml"]

Path_ = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The text is not valid YAML (or uses a construct we refuse, such as tags)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


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
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document into plain data with a line map; raises YamlSyntaxError."""
    try:
        node = yaml.compose(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(f"{exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from None
    if node is None:
        return LoadedYaml(data=None, lines={})
    lines: dict[Path_, int] = {}
    loader = _SafeLoader("")
    try:
        data = _build(node, (), lines, loader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlSyntaxError(str(exc.problem), mark.line + 1 if mark else None) from None
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
                raise YamlSyntaxError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            child = path + (key,)
            out[key] = _build(value_node, child, lines, loader)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
