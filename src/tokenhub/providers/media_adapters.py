"""One place to register media protocols: wire protocol name -> image / video adapter."""

from __future__ import annotations

from tokenhub.providers.ark_media import ArkImageAdapter, ArkVideoAdapter
from tokenhub.providers.dashscope_media import DashScopeVideoAdapter
from tokenhub.providers.kling_media import KlingVideoAdapter
from tokenhub.providers.media_base import ImageAdapter, VideoAdapter

VIDEO_ADAPTERS: dict[str, VideoAdapter] = {
    "ark": ArkVideoAdapter(),
    "kling": KlingVideoAdapter(),
    "dashscope": DashScopeVideoAdapter(),
}
IMAGE_ADAPTERS: dict[str, ImageAdapter] = {
    "ark": ArkImageAdapter(),
}
