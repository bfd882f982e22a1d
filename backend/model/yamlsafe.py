"""Load untrusted YAML safely, remembering where every value came from.

Answers files have no use for anchors, aliases or custom tags, so they are refused outright (no
alias bombs). Size, depth and node count are capped. Keys must be unique strings. Each value's
line and column is kept so that validation errors can point at the file, line and column.
Whatever of the file a message repeats (a key name) goes through `shown()`: control characters
escaped, long text cut, so a hostile file cannot write escape sequences to the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from backend.errors import BadInput

MAX_BYTES = 256 * 1024
MAX_DEPTH = 16
MAX_NODES = 5000

MAX_SHOWN = 60  # characters of a user's text repeated in a message

Path = tuple[str | int, ...]


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """Text from the file as it may appear in a message: non-printable characters escaped (no
    terminal escape sequences), cut to `limit` characters."""
    value = str(text)
    cut = len(value) > limit
    value = value[:limit]
    if not value.isprintable():
        value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return value + ("..." if cut else "")


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


@dataclass
class Located:
    """A document and the (line, column) of each path in it, both 1-based."""

    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path) -> tuple[int, int] | None:
        """Position of a value, or of the nearest enclosing value that has one."""
        path = tuple(path)
        while True:
            if path in self.key_positions:
                return self.key_positions[path]
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


def _scalar(node: yaml.ScalarNode) -> Any:
    """A scalar with YAML's safe implicit types; dates stay text; any other tag is refused."""
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value
    if node.tag not in _PLAIN_TAGS:
        raise _Refused(node, f"tag {shown(node.tag)} is not allowed in an answers file")
    return yaml.SafeLoader("").construct_object(node, deep=True)


class _Refused(Exception):
    def __init__(self, node: yaml.Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _NoAliasComposer(yaml.SafeLoader):
    """A SafeLoader whose composer refuses anchors and aliases before anything is expanded."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(None, f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _Refused(None, f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not allowed")
        return super().compose_node(parent, index)




def load(text: str | bytes, source: str = "answers") -> Located:
    """Parse YAML text into plain data with positions. Raises BadInput with file:line:col."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise BadInput(f"{source}: file is {len(text)} bytes; answers files are limited to {MAX_BYTES}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_BYTES:
        raise BadInput(f"{source}: file is too large; answers files are limited to {MAX_BYTES} bytes")
    if "\x00" in text:
        raise BadInput(f"{source}: contains a NUL character; not a text file")
    try:
        loader = _NoAliasComposer(text)  # reads the whole text: refuses control characters here
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        raise BadInput(f"{source}:{line}:{column}: character U+{exc.character:04X} (a control character) "
                       "is not allowed in an answers file") from None
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        raise BadInput(f"{source}: {exc.message}", hint="write the value out in full") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = shown(exc.problem or exc.context or "invalid YAML", 200)
        raise BadInput(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: invalid YAML: {exc.__class__.__name__}") from None
    except RecursionError:
        raise BadInput(f"{source}: nesting is too deep") from None
    finally:
        loader.dispose()
    located = Located(data=None)
    if root is None:
        located.data = {}
        return located
    counter = [0]
    try:
        located.data = _build(root, (), located, counter, 0)
    except _Refused as exc:
        where = f"{source}:{_mark(exc.node)[0]}:{_mark(exc.node)[1]}" if exc.node is not None else source
        raise BadInput(f"{where}: {exc.message}") from None
    return located


def _build(node: yaml.Node, path: Path, located: Located, counter: list[int], depth: int) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _Refused(node, f"more than {MAX_NODES} values; this is not an answers file")
    if depth > MAX_DEPTH:
        raise _Refused(node, f"nested deeper than {MAX_DEPTH} levels")
    located.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise _Refused(node, f"tag {shown(node.tag)} is not allowed in an answers file")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(key_node, "merge keys (<<) are not allowed")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node, "keys must be plain names")
            key = _scalar(key_node)
            if not isinstance(key, str):
                raise _Refused(key_node, f"key {shown(repr(key))} must be a name, not a {type(key).__name__}")
            if key in result:
                raise _Refused(key_node, f"key '{shown(key)}' appears twice")
            located.key_positions[path + (key,)] = _mark(key_node)
            result[key] = _build(value_node, path + (key,), located, counter, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise _Refused(node, f"tag {shown(node.tag)} is not allowed in an answers file")
        return [_build(item, path + (i,), located, counter, depth + 1) for i, item in enumerate(node.value)]
    try:
        return _scalar(node)
    except (yaml.YAMLError, ValueError, OverflowError):
        raise _Refused(node, "value cannot be read") from None
