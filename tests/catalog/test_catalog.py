"""The shipped catalog and the model-name resolution clients rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from tokenhub.catalog.loader import SHIPPED, apply_overrides, load_shipped
from tokenhub.errors import NotFound

REQUIRED = ["openai/gpt-4.1", "openai/gpt-5.4", "anthropic/claude-sonnet-4-6", "google/gemini-2.5-pro",
            "bytedance/doubao-seedance-2.0", "bytedance/doubao-seedream-5.0"]


def catalog():
    families, models = load_shipped()
    return apply_overrides(families, models, [])


def test_shipped_file_is_consistent():
    raw = yaml.safe_load(SHIPPED.read_text())
    ids = [m["id"] for m in raw["models"]]
    assert len(ids) == len(set(ids))
    family_ids = {f["id"] for f in raw["families"]}
    for m in raw["models"]:
        assert m["family"] in family_ids
        for name, value in (m.get("pricing") or {}).items():
            values = value.values() if isinstance(value, dict) else [value]
            for v in values:
                assert isinstance(v, str), f"{m['id']} pricing.{name} must be a quoted decimal"
                Decimal(v)
    for required in REQUIRED:
        assert required in ids


def test_kling_prices_are_the_products():
    kling = [m for m in catalog().models.values() if m.family == "kling"]
    assert len(kling) == 2
    for m in kling:
        assert m.pricing.per_second["std"] == 168_000_000 and m.pricing.per_second["pro"] == 224_000_000
        assert m.video and m.video["durations"] == [3, 15]


def test_short_names_resolve_when_unique_and_prefer_the_catalog_name():
    cat = catalog()
    assert cat.resolve("gpt-4.1").id == "openai/gpt-4.1"
    # deepseek-chat and deepseek-reasoner are served upstream as deepseek-flash; the name still means deepseek/deepseek-flash
    assert cat.resolve("deepseek-flash").id == "deepseek/deepseek-flash"
    assert cat.resolve("deepseek-chat").id == "deepseek/deepseek-chat"


def test_unknown_names_suggest_close_ids():
    with pytest.raises(NotFound) as exc:
        catalog().resolve("gpt-4.2")
    assert "openai/gpt-4.1" in exc.value.message


def test_libyamls_parser_reads_the_catalog_as_pyyamls_own_does():
    """The catalog is read with libyaml's parser (CSafeLoader, 8 x faster at start), to the same values."""
    from tokenhub.catalog import loader

    class Pure(yaml.SafeLoader):
        pass

    Pure.add_constructor("tag:yaml.org,2002:float", loader._decimal)
    text = SHIPPED.read_text(encoding="utf-8")
    assert issubclass(loader._DecimalLoader, yaml.CSafeLoader)
    read = yaml.load(text, Loader=loader._DecimalLoader)  # noqa: S506 - SafeLoader subclasses
    assert read == yaml.load(text, Loader=Pure)  # noqa: S506
