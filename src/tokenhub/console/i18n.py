"""Translations: flat JSON catalogs, one key per user-visible string.

Each language is a folder of files, one per area of the console (``locales/en/keys.json``,
``locales/zh/keys.json``, ...), merged into one catalog; a key defined in two files is an error.

``t("keys.title")`` looks the key up in the page's language, falls back to English, and as a last
resort shows the key itself (a test fails before that reaches anyone). Parameters use
``str.format`` names: ``t("keys.created_title", name=key["name"])``. The result is plain text; templates
escape it like any other value.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Callable

log = logging.getLogger("tokenhub.console")

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"

Translator = Callable[..., str]


@cache
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((LOCALES / lang).glob("*.json")):
        with open(path, encoding="utf-8") as fh:
            strings = json.load(fh)
        clash = sorted(set(strings) & set(merged))
        if clash:
            raise ValueError(f"{path}: keys already defined in another file: {clash}")
        merged.update(strings)
    return merged


def translator(lang: str) -> Translator:
    strings = catalog(lang)
    fallback = catalog(DEFAULT_LANGUAGE)

    def t(key: str, **params: object) -> str:
        text = strings.get(key) or fallback.get(key)
        if text is None:
            log.warning("console string %r is missing from the catalogs", key)
            return key
        return text.format(**params) if params else text

    return t


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The ``lang`` cookie if valid, else the browser's preference (``zh*`` -> zh), else English."""
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE
