"""Guards for untrusted YAML: a bound on alias expansion ("billion laughs") and a repr of bounded
cost, so that an error message about a huge value is cheap (:mod:`kinesim.loader` uses both)."""
from __future__ import annotations

import itertools
from typing import Any

import yaml

from kinesim.errors import format_path, format_sci

#: Most values (scalars, lists and mappings, counting every use of an alias) a YAML document may
#: hold once its aliases are expanded: a scenario has a few hundred; "billion laughs" documents,
#: whose nested aliases expand to billions of values, are refused before anything walks them.
MAX_YAML_VALUES = 1_000_000


class TooManyValues(Exception):
    def __init__(self, message: str):
        self.message = message


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_YAML_VALUES` values, or
    that holds itself (``&a [*a]``). Counts each composed node once (memoized), so it is fast
    however large the expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes whose children are being counted: the current ancestors
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif key in open_nodes:
            mark = node.start_mark
            raise TooManyValues(f"a YAML alias at line {mark.line + 1} refers to a value that contains it")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    if sizes[id(root)] <= MAX_YAML_VALUES:
        return
    path: list = []  # down to the value whose items are too large (not into them: a8 = [*a7, *a7, ...])
    node = root
    while True:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k.value if isinstance(k, yaml.ScalarNode) else "?", v) for k, v in node.value]
        else:
            pairs = list(enumerate(_children(node)))
        big = [(k, v) for k, v in pairs if sizes[id(v)] > MAX_YAML_VALUES]
        if len(big) != 1:
            break
        path.append(big[0][0])
        node = big[0][1]
    size = sizes[id(node)]
    shown = f"{size:,}" if size < 10**12 else format_sci(size)
    where = f"{format_path(tuple(path))}: " if path else ""
    raise TooManyValues(f"{where}YAML aliases expand this value (line {node.start_mark.line + 1}) to {shown} "
                         f"values; at most {MAX_YAML_VALUES:,} are allowed")


def bounded_repr(value: Any, limit: int) -> str:
    """``repr(value)``, or its first ``limit`` characters or a little more: nested lists, tuples, sets
    and dicts are written piece by piece and the walk stops once ``limit`` characters are out,
    so a value holding billions of items (YAML aliases) costs no more than a short one."""
    out: list[str] = []
    size = 0
    todo: list = [(value,)]  # popped from the end: str items are literal text, 1-tuples are values
    while todo and size <= limit:
        item = todo.pop()
        if isinstance(item, str):
            text = item
        else:
            v = item[0]
            if type(v) in (list, tuple, set, dict) and v:
                opening, closing = {list: "[]", tuple: "()", set: "{}", dict: "{}"}[type(v)]
                pieces: list = [opening]
                for i, element in enumerate(itertools.islice(v.items() if type(v) is dict else v, limit)):
                    pieces += [", "] if i else []
                    pieces += [(element[0],), ": ", (element[1],)] if type(v) is dict else [(element,)]
                pieces += ["," if type(v) is tuple and len(v) == 1 else ""]
                pieces += [", …" if len(v) > limit else "", closing]
                todo.extend(reversed(pieces))
                continue
            if isinstance(v, (str, bytes)) and len(v) > limit:
                v = v[:limit]
            try:
                text = repr(v)
            except ValueError:  # an int too long to write in decimal
                text = f"<an int of {v.bit_length()} bits>" if isinstance(v, int) else "<value>"
        out.append(text)
        size += len(text)
    return "".join(out)
