"""Every string is translated: catalogs agree, every key used exists, no template text is left bare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokenhub.console import i18n
from tokenhub.console.i18n import catalog, pick_language, translator
from tokenhub.console.render import TEMPLATES
from tokenhub.console.routes import GROUPS

CONSOLE = Path(i18n.__file__).parent
KEY_CALL = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["'](?!\s*~)""")
PREFIX_CALL = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']\s*~""")  # t("lang." ~ code): a family of keys
FIELD = re.compile(r"\{(\w*)\}")


def used_keys() -> tuple[set[str], set[str]]:
    keys, prefixes = set(), set()
    for path in [*TEMPLATES.rglob("*.html"), *CONSOLE.rglob("*.py"), *(CONSOLE / "static").rglob("*.js")]:
        text = path.read_text(encoding="utf-8")
        keys.update(KEY_CALL.findall(text))
        prefixes.update(PREFIX_CALL.findall(text))
    for group in GROUPS:
        keys.update(group.NOTICES.values())
    return keys, prefixes


def test_catalogs_have_the_same_keys_and_placeholders():
    en, zh = catalog("en"), catalog("zh")
    assert sorted(set(en) - set(zh)) == [], "missing from zh.json"
    assert sorted(set(zh) - set(en)) == [], "missing from en.json"
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        assert sorted(FIELD.findall(en[key])) == sorted(FIELD.findall(zh[key])), key


def test_every_key_used_exists():
    keys, prefixes = used_keys()
    assert len(keys) > 50
    en = catalog("en")
    assert sorted(keys - set(en)) == []
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in en), prefix
    for code in i18n.LANGUAGES:
        assert f"lang.{code}" in en
    for status in ("active", "revoked", "expired"):
        assert f"keys.status_{status}" in en
    for status in (400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503, 504):
        assert f"error.status_{status}" in en


TAG = re.compile(r"<[^>]*>", re.S)
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
ATTRIBUTES = re.compile(r"""\b(placeholder|title|aria-label|alt|data-confirm|data-copied-label)\s*=\s*"([^"]*)\"""")


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_have_no_bare_text(template):
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    without_jinja = JINJA.sub(" ", source)
    for attribute, value in ATTRIBUTES.findall(without_jinja):
        assert not re.search(r"\w", value), f"{template}: {attribute}=\"{value}\" is not translated"
    text = TAG.sub(" ", without_jinja)
    leftovers = [word for word in re.findall(r"[^\s·]+", text) if re.search(r"\w", word)]
    assert leftovers == [], f"{template}: text outside t(): {leftovers}"


def test_translator_formats_and_falls_back():
    t = translator("zh")
    assert t("keys.created_title", name="<b>") == "密钥“<b>”已创建"  # plain text: the template escapes it
    assert translator("en")("nav.keys") == "API keys"
    assert t("no.such.key") == "no.such.key"


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "zh-TW", "zh"),
        (None, "fr-FR,fr;q=0.9,en;q=0.5,zh;q=0.4", "en"),
        (None, "fr, de", "en"),
        (None, "en;q=0.3, zh;q=0.6", "zh"),
        (None, "zh;q=0", "en"),
        ("en", "zh-CN", "en"),
        ("zh", "en-US", "zh"),
        ("xx", "zh-CN", "zh"),
    ],
)
def test_pick_language(cookie, header, expected):
    assert pick_language(cookie, header) == expected
