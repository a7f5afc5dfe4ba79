"""Every provider a channel can name, as data: its wire protocol, official base URL and the
environment variable that may hold its key. A new OpenAI-compatible vendor is one row here.

``base_url`` is the prefix the vendor's own SDK takes; each protocol appends its own paths
(openai: ``/chat/completions``; anthropic: ``/v1/messages``; gemini: ``/v1beta/models/...``;
ark: ``/contents/generations/tasks``; kling: ``/v1/videos/...``; dashscope: ``/services/...``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    protocol: str  # openai | anthropic | gemini | ark | kling | dashscope
    base_url: str | None  # official; None where the operator must give one
    env_key: str | None = None  # e.g. OPENAI_API_KEY
    label: str = ""
    # OpenAI protocol: the field that bounds the output when the client gave none (OpenAI's reasoning
    # models refuse max_tokens; most compatible vendors know only max_tokens).
    output_limit_field: str = "max_tokens"


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OpenAI", "max_completion_tokens"),
        Provider("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "Anthropic"),
        Provider("gemini", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "Google Gemini"),
        Provider("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY", "xAI"),
        Provider("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "DeepSeek"),
        Provider("qwen", "openai", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", "Alibaba Qwen"),
        Provider("zhipu", "openai", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", "Zhipu GLM"),
        Provider("moonshot", "openai", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", "Moonshot Kimi"),
        Provider("minimax", "openai", "https://api.minimax.io/v1", "MINIMAX_API_KEY", "MiniMax"),
        Provider("xiaomi", "openai", "https://api.xiaomimimo.com/v1", "MIMO_API_KEY", "Xiaomi MiMo"),
        Provider("ark", "ark", "https://ark.cn-beijing.volces.com/api/v3", "ARK_API_KEY", "Volcengine Ark"),
        Provider("kling", "kling", "https://api-singapore.klingai.com", None, "Kling"),
        Provider("dashscope", "dashscope", "https://dashscope-intl.aliyuncs.com/api/v1", "DASHSCOPE_API_KEY", "Alibaba DashScope"),
        Provider("openai-compatible", "openai", None, None, "OpenAI-compatible server"),
    ]
}

KLING_ENV = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")


def env_channel_keys(env: dict[str, str]) -> dict[str, str]:
    """Upstream keys found in the environment, by provider name.

    DASHSCOPE_API_KEY serves both Qwen chat (compatible mode) and Wan video (native API).
    """
    found: dict[str, str] = {}
    for provider in PROVIDERS.values():
        if provider.env_key and env.get(provider.env_key):
            found[provider.name] = env[provider.env_key]
    if all(env.get(name) for name in KLING_ENV):
        found["kling"] = f"{env[KLING_ENV[0]]}:{env[KLING_ENV[1]]}"
    return found
