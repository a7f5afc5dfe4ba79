"""The registry is the only place that names the wire protocols.

Every other module reaches a protocol through the registry (``chat_adapter(channel.protocol)``, a
responder's ``passthrough`` map of adapter classes), so adding a protocol is one package plus one
registry line. This test reads the source: a protocol's name as a string constant in a comparison,
a subscript, a dict key, a ``protocol=`` argument or a ``protocol = ...`` attribute anywhere else
fails it. (Vendor rows name their protocol as data; the fakes in simulator/ speak as the vendors.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import tokenhub
from tokenhub.providers.registry import CHAT_ADAPTERS
from tokenhub.vendors import PROVIDERS

SOURCE = Path(tokenhub.__file__).parent
REGISTRY = {"providers/registry.py", "vendors.py"}
PROTOCOLS = set(CHAT_ADAPTERS) | {p.protocol for p in PROVIDERS.values()}


def _protocol_names(node: ast.AST) -> list[str]:
    """Protocol names used as such by ``node``: compared, looked up, keyed, passed or declared."""
    consts: list[ast.AST] = []
    if isinstance(node, ast.Compare):
        consts = [node.left, *node.comparators]
    elif isinstance(node, ast.Subscript):
        consts = [node.slice]
    elif isinstance(node, ast.Dict):
        consts = [k for k in node.keys if k is not None]
    elif isinstance(node, ast.keyword) and node.arg == "protocol":
        consts = [node.value]
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == "protocol" for t in targets):
            consts = [node.value] if node.value is not None else []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        consts = [node.args[0]]
    names = []
    for const in consts:
        for leaf in ast.walk(const):
            if isinstance(leaf, ast.Constant) and leaf.value in PROTOCOLS:
                names.append(leaf.value)
    return names


def test_the_registry_knows_every_protocol_a_vendor_names() -> None:
    assert {"openai", "anthropic", "gemini"} <= PROTOCOLS


def test_only_the_registry_names_the_protocols() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative in REGISTRY or relative.startswith("simulator/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            found += [f"{relative}:{getattr(node, 'lineno', '?')}: {name!r}" for name in _protocol_names(node)]
    assert not found, "protocol names outside the registry:\n" + "\n".join(found)


def test_the_check_sees_a_protocol_name() -> None:
    """The scan is not blind: each way of naming a protocol is caught."""
    samples = [
        'if channel.protocol == "anthropic": pass',
        'ADAPTERS["gemini"]',
        'x = {"openai": 1}',
        'Channel(protocol="openai")',
        'class A:\n    protocol = "anthropic"',
        'ADAPTERS.get("openai")',
    ]
    for sample in samples:
        assert any(_protocol_names(node) for node in ast.walk(ast.parse(sample))), sample
