"""The API reference, in English and Simplified Chinese.

``docs.html`` is the frame (title, table of contents) with translated strings like every page; the
long prose is one template per language (``templates/docs/en.html``, ``zh.html``) built from the
same section and code-block macros (``templates/docs/code.html``), so code is written once and never
translated. tests/console/test_docs.py checks that both languages have the same sections, endpoints
and code blocks.
"""

from __future__ import annotations

from aiohttp import web

from tokenhub.catalog.model import Catalog
from tokenhub.console.core import Ctx, Pages, page
from tokenhub.console.pages.catalog import base_url, enabled_models, examples

SECTIONS = (
    "quickstart", "auth", "models", "chat", "responses", "messages", "gemini", "embeddings", "completions", "openrouter",
    "images", "videos", "credits", "key", "generation", "errors")
QUICK_START_MODEL = "openai/gpt-4.1"


def quick_start(catalog: Catalog, base: str) -> dict[str, str]:
    """The quick start's cURL, Python and JavaScript code: the catalog examples for a chat model this server has."""
    chat = [m for m in enabled_models(catalog) if m.kind == "chat"]
    model = next((m for m in chat if m.id == QUICK_START_MODEL), chat[0] if chat else None)
    if model is None:
        return {"curl": "", "python": "", "javascript": ""}
    return {e.slug: e.code for e in examples(model, base) if e.slug in ("curl", "python", "javascript")}


class DocsPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/docs", self.index)]

    @page("any")  # public, like the catalog
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        base = base_url(ctx.request)
        return self.render(
            ctx, "docs.html", title=ctx.t("docs.title"), sections=SECTIONS, base_url=base,
            quick=quick_start(self.gw.directory.catalog, base), body=f"docs/{ctx.lang}.html",
        )  # fmt: skip
