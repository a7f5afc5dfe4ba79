"""The model catalog: providers with their models, prices and code examples.

Both pages read the live catalog the gateway serves (``gw.directory.catalog``: the shipped models
with the operator's overrides), so a changed price shows at once and a disabled model is gone, just
as from ``GET /api/v1/models``. ``/models`` groups the models by provider (catalog family) in the
catalog's order and filters them by GET parameters (``q``, ``provider``, ``modality``,
``max_price``), so it works without JavaScript; ``catalog.js`` applies the same rules live.
``/models/{id}`` shows one model with copy-ready examples filled in with this server's base URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from aiohttp import web

from tokenhub.catalog.model import Catalog, Family, Model
from tokenhub.console import i18n
from tokenhub.console.core import Ctx, Pages, page, site_url, usd
from tokenhub.console.forms import parse_usd
from tokenhub.console.i18n import Translator
from tokenhub.errors import InvalidRequest, NotFound

MODALITIES = ("text", "image", "audio", "video", "file")
VIDEO_MODES = ("default", "std", "pro", "std_audio", "pro_audio")


def base_url(request: web.Request) -> str:
    """This server's API base: ``TOKENHUB_PUBLIC_URL/api/v1``, else as the browser reached it (``https://host/api/v1``)."""
    return f"{site_url(request)}/api/v1"


def enabled_models(catalog: Catalog) -> list[Model]:
    return [m for m in catalog.models.values() if m.enabled]


def family_description(family: Family, lang: str) -> str:
    return (family.description_zh if lang == "zh" else "") or family.description


# -- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    q: str = ""
    provider: str = ""
    modality: str = ""
    max_price: str = ""  # as typed: USD per 1M input tokens
    max_price_nanos: int | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> "Filters":
        """The filters in the URL; a bad price raises ``InvalidRequest`` (param ``max_price``)."""
        max_price = query.get("max_price", "").strip()[:40]
        return cls(
            q=query.get("q", "").strip()[:200],
            provider=query.get("provider", "").strip()[:100],
            modality=query.get("modality", "").strip()[:20],
            max_price=max_price,
            max_price_nanos=parse_usd(max_price, "max_price") if max_price else None,
        )

    def accepts(self, model: Model, family: Family | None) -> bool:
        if self.provider and model.family != self.provider:
            return False
        if self.modality and self.modality not in (*model.input_modalities, *model.output_modalities):
            return False
        if self.max_price_nanos is not None and (model.kind not in ("chat", "embedding") or model.pricing.input > self.max_price_nanos):
            return False  # the price filter is per 1M input tokens: media models have no such price
        return not self.q or self.q.lower() in search_text(model, family)


def search_text(model: Model, family: Family | None) -> str:
    return " ".join((model.id, model.name, family.name if family else "")).lower()


# -- what the templates show ---------------------------------------------------------------------


@dataclass
class Price:
    label: str  # translated: "Input", "Per image (2K)", ...
    amount: str  # "$2.5"
    unit: str  # translated: "per 1M tokens", "per image", "per second"


def label_of(t: Translator, prefix: str, value: str) -> str:
    """``t(prefix + value)`` when the catalogs have it, else the value itself (operator data)."""
    key = prefix + value
    return t(key) if key in i18n.catalog(i18n.DEFAULT_LANGUAGE) else value


def prices(model: Model, t: Translator, *, detailed: bool = False) -> list[Price]:
    """The prices the gateway bills with, in the catalog's own units."""
    p = model.pricing
    if model.kind == "chat":
        per_m = t("catalog.unit_million")
        rows = [
            Price(t("catalog.price_input"), usd(p.input), per_m),
            Price(t("catalog.price_cached"), usd(p.input if p.cached_input is None else p.cached_input), per_m),
            Price(t("catalog.price_output"), usd(p.output), per_m),
        ]
        if detailed and p.cache_write is not None:
            rows.append(Price(t("catalog.price_cache_write"), usd(p.cache_write), per_m))
        if detailed and p.reasoning is not None:
            rows.append(Price(t("catalog.price_reasoning"), usd(p.reasoning), per_m))
        return rows
    if model.kind == "embedding":
        return [Price(t("catalog.price_input"), usd(p.input), t("catalog.unit_million"))]
    rows = []
    if p.per_image is not None:
        rows.append(Price(t("catalog.price_image"), usd(p.per_image), t("catalog.unit_image")))
    if detailed or p.per_image is None:
        for size, nanos in p.per_image_by_size.items():
            rows.append(Price(t("catalog.price_image_size", size=size), usd(nanos), t("catalog.unit_image")))
    for mode, nanos in sorted(p.per_second.items(), key=lambda item: _mode_order(item[0])):
        rows.append(Price(label_of(t, "catalog.mode_", mode), usd(nanos), t("catalog.unit_second")))
    return rows


def _mode_order(mode: str) -> tuple[int, str]:
    return (VIDEO_MODES.index(mode) if mode in VIDEO_MODES else len(VIDEO_MODES), mode)


def model_view(model: Model, family: Family | None, t: Translator, *, detailed: bool = False) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "kind": model.kind,
        "kind_label": label_of(t, "catalog.kind_", model.kind),
        "family": model.family,
        "family_name": family.name if family else model.family,
        "context_length": f"{model.context_length:,}" if model.context_length else None,
        "max_output_tokens": f"{model.max_output_tokens:,}" if model.max_output_tokens else None,
        "inputs": [label_of(t, "catalog.modality_", m) for m in model.input_modalities],
        "outputs": [label_of(t, "catalog.modality_", m) for m in model.output_modalities],
        "modalities": " ".join(sorted({*model.input_modalities, *model.output_modalities})),
        "capabilities": list(model.capabilities),
        "prices": prices(model, t, detailed=detailed),
        "input_nanos": model.pricing.input if model.kind in ("chat", "embedding") else "",
        "search": search_text(model, family),
        "image": model.image or {},
        "video": model.video or {},
    }


@dataclass
class ProviderGroup:
    id: str
    name: str
    description: str
    count: int  # the provider's enabled models
    models: list[dict[str, Any]] = field(default_factory=list)  # all of them; ``shown`` says if the filters let it through

    @property
    def shown(self) -> int:
        return sum(1 for m in self.models if m["shown"])


def provider_groups(catalog: Catalog, filters: Filters, t: Translator, lang: str) -> list[ProviderGroup]:
    """Every provider with enabled models, in the catalog's order; every model is rendered (the filtered-out
    ones hidden) so that the page's script can filter live from the same markup."""
    families = {f.id: f for f in catalog.families}
    by_family: dict[str, list[Model]] = {}
    for model in enabled_models(catalog):
        by_family.setdefault(model.family, []).append(model)
    groups = []
    for family_id, models in sorted(by_family.items(), key=lambda item: _family_order(catalog, item[0])):
        family = families.get(family_id)
        group = ProviderGroup(
            family_id, family.name if family else family_id, family_description(family, lang) if family else "", len(models)
        )
        group.models = [{**model_view(m, family, t), "shown": filters.accepts(m, family)} for m in models]
        groups.append(group)
    return groups


def _family_order(catalog: Catalog, family_id: str) -> int:
    ids = [f.id for f in catalog.families]
    return ids.index(family_id) if family_id in ids else len(ids)


# -- code examples -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    slug: str  # element id and test id: "python", "curl", ...
    label_key: str
    language: str  # for the code block's class
    code: str


# The client set-up every SDK example starts with.
PY_CLIENT = """\
import os

from openai import OpenAI

client = OpenAI(
    base_url="@BASE@",
    api_key=os.environ["TOKENHUB_API_KEY"],
)

"""
JS_CLIENT = """\
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: "@BASE@",
  apiKey: process.env.TOKENHUB_API_KEY,
});

"""

CHAT_EXAMPLES = {
    "curl": ("catalog.example_curl", "shell", """\
curl @BASE@/chat/completions \\
  -H "Authorization: Bearer $TOKENHUB_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "@MODEL@", "messages": [{"role": "user", "content": "Hello!"}]}'"""),
    "python": ("catalog.example_python", "python", PY_CLIENT + """\
completion = client.chat.completions.create(
    model="@MODEL@",
    messages=[{"role": "user", "content": "Hello!"}],
)
print(completion.choices[0].message.content)
print("tokens:", completion.usage.total_tokens, "cost (USD):", completion.usage.cost)"""),
    "javascript": ("catalog.example_javascript", "javascript", JS_CLIENT + """\
const completion = await client.chat.completions.create({
  model: "@MODEL@",
  messages: [{ role: "user", content: "Hello!" }],
});
console.log(completion.choices[0].message.content);"""),
    "python-stream": ("catalog.example_python_stream", "python", PY_CLIENT + """\
stream = client.chat.completions.create(
    model="@MODEL@",
    messages=[{"role": "user", "content": "Write a haiku about the sea."}],
    stream=True,
    stream_options={"include_usage": True},  # the last chunk carries usage and cost
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print("\\ncost (USD):", chunk.usage.cost)"""),
    "javascript-stream": ("catalog.example_javascript_stream", "javascript", JS_CLIENT + """\
const stream = await client.chat.completions.create({
  model: "@MODEL@",
  messages: [{ role: "user", content: "Write a haiku about the sea." }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
  if (chunk.usage) console.log("\\ncost (USD):", chunk.usage.cost);
}"""),
}

EMBEDDING_EXAMPLES = {
    "curl": ("catalog.example_curl", "shell", """\
curl @BASE@/embeddings \\
  -H "Authorization: Bearer $TOKENHUB_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "@MODEL@", "input": ["The quick brown fox", "jumps over the lazy dog"]}'"""),
    "python": ("catalog.example_python", "python", PY_CLIENT + """\
result = client.embeddings.create(
    model="@MODEL@",
    input=["The quick brown fox", "jumps over the lazy dog"],
)
print(len(result.data), "vectors of", len(result.data[0].embedding), "dimensions")
print("tokens:", result.usage.prompt_tokens, "cost (USD):", result.usage.cost)"""),
    "javascript": ("catalog.example_javascript", "javascript", JS_CLIENT + """\
const result = await client.embeddings.create({
  model: "@MODEL@",
  input: ["The quick brown fox", "jumps over the lazy dog"],
});
console.log(result.data.length, "vectors of", result.data[0].embedding.length, "dimensions");"""),
}

IMAGE_EXAMPLES = {
    "curl": ("catalog.example_curl", "shell", """\
curl @BASE@/images/generations \\
  -H "Authorization: Bearer $TOKENHUB_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "@MODEL@", "prompt": "A lighthouse at dawn, watercolor", "n": 1@SIZE_JSON@}'"""),
    "python": ("catalog.example_python", "python", PY_CLIENT + """\
result = client.images.generate(
    model="@MODEL@",
    prompt="A lighthouse at dawn, watercolor",
    n=1,@SIZE_PY@
)
print(result.data[0].url)  # the upstream's URL: download what you want to keep"""),
    "javascript": ("catalog.example_javascript", "javascript", JS_CLIENT + """\
const result = await client.images.generate({
  model: "@MODEL@",
  prompt: "A lighthouse at dawn, watercolor",
  n: 1,@SIZE_JS@
});
console.log(result.data[0].url);"""),
}

VIDEO_EXAMPLES = {
    "curl": ("catalog.example_curl", "shell", """\
curl @BASE@/videos/generations \\
  -H "Authorization: Bearer $TOKENHUB_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "@MODEL@", "prompt": "A red fox running through fresh snow", "duration": @DURATION@}'

# then poll the task until its status is succeeded or failed:
curl @BASE@/videos/generations/tsk-... \\
  -H "Authorization: Bearer $TOKENHUB_API_KEY\""""),
    "python": ("catalog.example_python_httpx", "python", """\
import os
import time

import httpx  # installed with the OpenAI SDK

api = httpx.Client(
    base_url="@BASE@",
    headers={"Authorization": "Bearer " + os.environ["TOKENHUB_API_KEY"]},
    timeout=60,
)
task = api.post("/videos/generations", json={
    "model": "@MODEL@",
    "prompt": "A red fox running through fresh snow",
    "duration": @DURATION@,
}).raise_for_status().json()
while task["status"] in ("queued", "running"):
    time.sleep(5)
    task = api.get("/videos/generations/" + task["id"]).raise_for_status().json()
print(task["status"], task["data"][0]["video_url"] if task["data"] else task["error"])"""),
    "javascript": ("catalog.example_javascript_fetch", "javascript", """\
const base = "@BASE@";
const headers = {
  Authorization: `Bearer ${process.env.TOKENHUB_API_KEY}`,
  "Content-Type": "application/json",
};

let task = await (await fetch(`${base}/videos/generations`, {
  method: "POST",
  headers,
  body: JSON.stringify({
    model: "@MODEL@",
    prompt: "A red fox running through fresh snow",
    duration: @DURATION@,
  }),
})).json();
while (task.status === "queued" || task.status === "running") {
  await new Promise((resolve) => setTimeout(resolve, 5000));
  task = await (await fetch(`${base}/videos/generations/${task.id}`, { headers })).json();
}
console.log(task.status, task.data[0]?.video_url ?? task.error);"""),
}


def example_duration(model: Model) -> int:
    """5 seconds, or the nearest duration the model allows (its catalog ``video.durations`` range)."""
    durations = [int(d) for d in (model.video or {}).get("durations") or [] if str(d).lstrip("-").isdigit()]
    positive = [d for d in durations if d > 0]
    if not positive:
        return 5
    return min(max(5, min(positive)), max(positive))


def example_size(model: Model) -> str | None:
    sizes = [str(s) for s in (model.image or {}).get("sizes") or []]
    return sizes[0] if sizes else None


def examples(model: Model, base: str) -> list[Example]:
    """Copy-ready code for one model against this server."""
    table = {"image": IMAGE_EXAMPLES, "video": VIDEO_EXAMPLES, "embedding": EMBEDDING_EXAMPLES}.get(model.kind, CHAT_EXAMPLES)
    size = example_size(model)
    values = {
        "@BASE@": base,
        "@MODEL@": model.id,
        "@DURATION@": str(example_duration(model)),
        "@SIZE_JSON@": f', "size": "{size}"' if size else "",
        "@SIZE_PY@": f'\n    size="{size}",' if size else "",
        "@SIZE_JS@": f'\n  size: "{size}",' if size else "",
    }
    result = []
    for slug, (label_key, language, code) in table.items():
        for token, value in values.items():
            code = code.replace(token, value)
        result.append(Example(slug, label_key, language, code))
    return result


# -- pages ---------------------------------------------------------------------------------------


class CatalogPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/models", self.index), web.get(r"/models/{model_id:.+}", self.detail)]

    @page("any")  # public: visitors browse the catalog before they sign up
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        catalog = self.gw.directory.catalog
        error, status = None, 200
        try:
            filters = Filters.parse(ctx.request.query)
        except InvalidRequest:
            error, status = ctx.t("catalog.bad_price"), 400
            filters = Filters.parse({k: v for k, v in ctx.request.query.items() if k != "max_price"})
        groups = provider_groups(catalog, filters, ctx.t, ctx.lang)
        shown = sum(g.shown for g in groups)
        modalities = sorted(
            {m for model in enabled_models(catalog) for m in (*model.input_modalities, *model.output_modalities)},
            key=lambda m: (MODALITIES.index(m) if m in MODALITIES else len(MODALITIES), m),
        )
        return self.render(
            ctx, "catalog.html", status=status, title=ctx.t("catalog.title"), groups=groups, filters=filters,
            shown=shown, total=sum(g.count for g in groups), error=error,
            modality_options=[(m, label_of(ctx.t, "catalog.modality_", m)) for m in modalities], base_url=base_url(ctx.request),
        )  # fmt: skip

    @page("any")
    async def detail(self, ctx: Ctx) -> web.StreamResponse:
        catalog = self.gw.directory.catalog
        model = catalog.get(ctx.request.match_info["model_id"])
        if model is None or not model.enabled:
            raise NotFound("no such model", code="not_found")
        family = next((f for f in catalog.families if f.id == model.family), None)
        return self.render(
            ctx, "catalog_model.html", title=model.name, model=model_view(model, family, ctx.t, detailed=True),
            family_description=family_description(family, ctx.lang) if family else "",
            examples=examples(model, base_url(ctx.request)), base_url=base_url(ctx.request),
        )  # fmt: skip
