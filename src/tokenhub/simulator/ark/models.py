"""The Seedance/Seedream models the fake serves and what each video model accepts (sizes, ratios, durations)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODELS = (
    "doubao-seedance-2-0-260128",
    "doubao-seedance-2-0-fast-260128",
    "doubao-seedance-1-5-pro-251215",
    "doubao-seedance-1-0-pro-250528",
    "dreamina-seedance-2-0-260128",
    "dreamina-seedance-2-0-fast-260128",
    "doubao-seedream-5-0-260128",
    "doubao-seedream-5-5-261028",
    "doubao-seedream-4-5-251128",
    "doubao-seedream-4-0-250828",
    "seedream-4-5-251128",
)
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
FPS = 24
AUTO_DURATION = 5  # what the fake "model" picks for duration -1


# W x H per resolution, in RATIOS order (Seedance 1.5 pro / 2.x table, and 1.0's)
PIXELS_V15 = {
    "480p": ((864, 496), (752, 560), (640, 640), (560, 752), (496, 864), (992, 432)),
    "720p": ((1280, 720), (1112, 834), (960, 960), (834, 1112), (720, 1280), (1470, 630)),
    "1080p": ((1920, 1080), (1664, 1248), (1440, 1440), (1248, 1664), (1080, 1920), (2206, 946)),
}
PIXELS_V10 = {
    "480p": ((864, 480), (736, 544), (640, 640), (544, 736), (480, 864), (960, 416)),
    "720p": ((1248, 704), (1120, 832), (960, 960), (832, 1120), (704, 1248), (1504, 640)),
    "1080p": ((1920, 1088), (1664, 1248), (1440, 1440), (1248, 1664), (1088, 1920), (2176, 928)),
}


@dataclass(frozen=True)
class VideoCaps:
    durations: tuple[int, int]
    auto_duration: bool
    resolutions: tuple[str, ...]
    default_resolution: str
    audio: bool
    media_refs: bool  # reference videos / audios
    max_reference_images: int
    pixels: dict[str, tuple[tuple[int, int], ...]]


def video_caps(model: str) -> VideoCaps:
    if "seedance-1-0" in model:
        return VideoCaps(
            (2, 12), False, ("480p", "720p", "1080p"), "1080p" if "pro" in model else "720p", False, False, 4, PIXELS_V10
        )
    if "seedance-1-5" in model:
        return VideoCaps((4, 12), True, ("480p", "720p", "1080p"), "720p", True, False, 0, PIXELS_V15)
    resolutions = ("480p", "720p") if "fast" in model else ("480p", "720p", "1080p")
    return VideoCaps((4, 15), True, resolutions, "720p", True, True, 9, PIXELS_V15)
