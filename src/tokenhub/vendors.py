"""Every provider a channel can name, as data: its wire protocol, official base URL and the
environment variable that may hold its key. A new OpenAI-compatible vendor is one row here.

``base_url`` is the prefix the vendor's own SDK takes; each protocol appends its own paths
(openai: ``/chat/completions``; anthropic: ``/v1/messages``; gemini: ``/v1beta/models/...``;
ark: ``/contents/generations/tasks``; kling: ``/v1/videos/...``; dashscope: ``/services/...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Provider:
    name: str
    protocol: str  # a wire protocol of providers/registry.py
    base_url: str | None  # official; None where the operator must give one
    # the environment variable that may hold its key (e.g. OPENAI_API_KEY); several, for a key made of
    # parts (joined with ":" in this order)
    env_key: str | tuple[str, ...] | None = None
    label: str = ""
    # OpenAI protocol: the field that bounds the output when the client gave none (OpenAI's reasoning
    # models refuse max_tokens; most compatible vendors know only max_tokens).
    output_limit_field: str = "max_tokens"
    key_parts: tuple[str, ...] = ()  # a key made of parts, "A:B" (Kling: an access key and a secret key)
    result_url_lifetime: timedelta | None = None  # how long the vendor keeps a generated image or video at its URL
    responses: bool = False  # OpenAI protocol: its channels also serve OpenAI's Responses API (/responses)

    def check_key(self, api_key: str) -> str | None:
        """Why ``api_key`` cannot be this vendor's key, or None."""
        if self.key_parts:
            parts = api_key.split(":", len(self.key_parts) - 1)
            if len(parts) != len(self.key_parts) or not all(part.strip() for part in parts):
                return f"a {self.label} key is {':'.join(self.key_parts)}"
        return None


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OpenAI", "max_completion_tokens", responses=True),
        Provider("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "Anthropic"),
        Provider("gemini", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "Google Gemini"),
        Provider("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY", "xAI", responses=True),
        Provider("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "DeepSeek"),
        Provider("qwen", "openai", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", "Alibaba Qwen"),
        Provider("zhipu", "openai", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", "Zhipu GLM"),
        Provider("moonshot", "openai", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", "Moonshot Kimi"),
        Provider("minimax", "openai", "https://api.minimax.io/v1", "MINIMAX_API_KEY", "MiniMax"),
        Provider("xiaomi", "openai", "https://api.xiaomimimo.com/v1", "MIMO_API_KEY", "Xiaomi MiMo"),
        Provider("ark", "ark", "https://ark.cn-beijing.volces.com/api/v3", "ARK_API_KEY", "Volcengine Ark",
                 result_url_lifetime=timedelta(hours=24)),
        Provider("kling", "kling", "https://api-singapore.klingai.com", ("KLING_ACCESS_KEY", "KLING_SECRET_KEY"), "Kling",
                 key_parts=("ACCESS_KEY", "SECRET_KEY"), result_url_lifetime=timedelta(days=30)),
        Provider("dashscope", "dashscope", "https://dashscope-intl.aliyuncs.com/api/v1", "DASHSCOPE_API_KEY", "Alibaba DashScope",
                 result_url_lifetime=timedelta(hours=24)),
        Provider("openai-compatible", "openai", None, None, "OpenAI-compatible server"),
    ]
}

def env_channel_keys(env: dict[str, str]) -> dict[str, str]:
    """Upstream keys found in the environment, by provider name.

    DASHSCOPE_API_KEY serves both Qwen chat (compatible mode) and Wan video (native API).
    """
    found: dict[str, str] = {}
    for provider in PROVIDERS.values():
        names = (provider.env_key,) if isinstance(provider.env_key, str) else provider.env_key or ()
        if names and all(env.get(name) for name in names):
            found[provider.name] = ":".join(env[name] for name in names)
    return found
