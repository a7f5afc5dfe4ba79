"""Kling's model families and what each model accepts (durations, modes, sound, ratios, prompt length)."""

from __future__ import annotations

FAMILIES = ("text2video", "image2video", "omni-video")
TEXT2VIDEO_MODELS = (
    "kling-v1",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
)
IMAGE2VIDEO_MODELS = TEXT2VIDEO_MODELS + ("kling-v1-5", "kling-v2-1")
OMNI_MODELS = ("kling-video-o1", "kling-v3-omni")
DEFAULT_MODELS = IMAGE2VIDEO_MODELS + OMNI_MODELS
FAMILY_MODELS = {"text2video": TEXT2VIDEO_MODELS, "image2video": IMAGE2VIDEO_MODELS, "omni-video": OMNI_MODELS}
DEFAULT_MODEL_NAME = "kling-v1"
LONG_DURATIONS = tuple(str(s) for s in range(3, 16))
DURATIONS = {"kling-v3": LONG_DURATIONS, "kling-v3-omni": LONG_DURATIONS, "kling-video-o1": tuple(str(s) for s in range(3, 11))}
STANDARD_DURATIONS = ("5", "10")
SOUND_MODELS = frozenset({"kling-v2-6", "kling-v3", "kling-v3-omni"})
SILENT_STD_MODELS = frozenset({"kling-v2-6"})  # std mode generates no audio
MODES = ("std", "pro")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
OMNI_IMAGE_TYPES = ("first_frame", "end_frame")
MAX_PROMPT_CHARS = 2500
