"""Reading YAML safely: numbers as they look, no duplicate keys, no Python tags, bounded in every way.

Bounds: a file of at most `MAX_CONFIG_BYTES`, at most `MAX_YAML_NODES` values (as written, and once
aliases are expanded: an alias bomb), at most `MAX_YAML_DEPTH` levels of nesting; depth and size
are checked on the parser's events before any tree is built. Merge keys (`<<: *defaults`) work as
YAML 1.1 defines them.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from ..errors import UserError

# ----- YAML -----------------------------------------------------------------------------------

MAX_YAML_NODES = 100_000  # a config is a few dozen values; more means an alias bomb or a mistake
MAX_YAML_DEPTH = 50  # a config nests 3 or 4 levels
MAX_CONFIG_BYTES = 256 << 10  # a config is a few KB; a sweep's saved config a few more
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # for the files lossbench wrote itself


class _Loader(yaml.SafeLoader):
    """SafeLoader (no Python tags) that reads 1e-3 as a number and refuses duplicate keys."""


# PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; read it as the float it looks like.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _no_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: SafeLoader merges it below; its keys may be overridden here
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)):
            continue
        if key in seen:
            first, line, text = seen[key]
            if type(first) is type(key):
                what = f"duplicate key {key!r} (first at line {line + 1})"
            else:  # 1, 1.0 and true are one key once read (true == 1 in Python)
                what = (
                    f"keys {text!r} (line {line + 1}) and {key_node.value!r} are one key once read "
                    "(YAML's true is 1); quote keys to keep them apart"
                )
            raise yaml.constructor.ConstructorError(None, None, what, key_node.start_mark)
        seen[key] = (key, key_node.start_mark.line, key_node.value)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _expanded_size(node, memo) -> int:
    """Number of values the node stands for once aliases are expanded (memoised, so it is fast)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # guards against recursive structures
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(c, memo) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, 10 * MAX_YAML_NODES)
    return memo[key]


def _holds_itself(node: yaml.Node, open_: set[int], done: set[int]) -> bool:
    """Whether a collection contains itself through an alias (`&a [1, *a]`): no config can."""
    if not isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) or id(node) in done:
        return False
    if id(node) in open_:
        return True
    open_.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    if any(_holds_itself(c, open_, done) for c in children):
        return True
    open_.discard(id(node))
    done.add(id(node))
    return False


def _prescan(text: str) -> str | None:
    """Why the YAML is too deep or too large to build, from libyaml's parser events alone, or None.

    The event parser keeps its own stack, so it copes with any depth and is fast; only text that
    passes is composed into a tree (libyaml's composer recurses in C and crashed the process at
    100000 levels; PyYAML's composer hits Python's recursion limit near 300).
    """
    depth = n_values = 0
    try:
        for event in yaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return f"the YAML nests more than {MAX_YAML_DEPTH} levels deep"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent):
                n_values += 1
                if n_values > MAX_YAML_NODES:
                    return f"the YAML holds more than {MAX_YAML_NODES} values; a config holds a few dozen"
    except yaml.YAMLError:
        return None  # reported with its line by the full parse
    return None


def parse_yaml(text: str, source: str, fast: bool = False) -> Any:
    """Parse YAML text safely; a `UserError` naming the line on any problem.

    `fast` reads a file lossbench wrote (a run folder's config.yaml) with libyaml's plain safe
    loader, under the same bounds: about 10x faster on a 1000-run sweep folder.
    """
    loader_class = _FAST_LOADER if fast else _Loader
    problem = _prescan(text)
    if problem:
        raise UserError([("", problem)], source)
    try:
        loader = loader_class(text)  # checks every character at once
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        what = f"character #x{e.character:04x} is not allowed in YAML (a control character?)"
        raise UserError([("", f"invalid YAML at line {line}: {what}")], source) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        memo: dict = {}
        if _expanded_size(node, memo) > MAX_YAML_NODES:
            what = (
                f"holds more than {MAX_YAML_NODES} values; a config holds a few dozen"
                if len(memo) > MAX_YAML_NODES
                else f"expands to more than {MAX_YAML_NODES} values through its aliases (an alias bomb?)"
            )
            raise UserError([("", f"the YAML {what}")], source)
        if _holds_itself(node, set(), set()):
            raise UserError(
                [("", "the YAML holds an alias inside its own anchor (a value that contains itself)")], source
            )
        return loader.construct_document(node)
    except RecursionError:  # a guard: the depth check above should have refused it
        raise UserError([("", f"the YAML nests more than {MAX_YAML_DEPTH} levels deep")], source) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(e, "problem", None) or str(e)
        if "could not determine a constructor" in str(e) or "could not determine a constructor" in what:
            what = f"{what}; tags that build Python objects are not allowed in a config"
        if "\t" in text and "found character '\\t'" in str(e):
            what += " (tabs cannot indent YAML; use spaces)"
        raise UserError([("", f"invalid YAML at {where}{what}")], source) from None
    finally:
        loader.dispose()


def read_yaml_file(path: str) -> Any:
    """Read a config file; a `UserError` for a missing, unreadable, non-UTF-8 or invalid file."""
    if not os.path.exists(path):
        raise UserError([("", "file not found")], path)
    if os.path.isdir(path):
        raise UserError([("", "is a directory, not a config file")], path)
    try:
        with open(path, "rb") as f:  # at most one byte past the limit: an endless file is refused too
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise UserError([("", f"cannot read the file: {e.strerror}")], path) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(
            [
                (
                    "",
                    f"is larger than {MAX_CONFIG_BYTES >> 10} KiB; a config is a few KB of names and "
                    "numbers (is this the right file?)",
                )
            ],
            path,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            [("", f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save it as UTF-8")],
            path,
        ) from None
    return parse_yaml(text, path)


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested mappings as dotted keys: {"model": {"depth": 2}} -> {"model.depth": 2}."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
