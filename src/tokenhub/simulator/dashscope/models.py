"""The Wan models the fake serves and what each accepts (sizes or resolutions, durations)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SIZES_480P = ("832*480", "480*832", "624*624")
SIZES_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
SIZES_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")


@dataclass(frozen=True)
class ModelSpec:
    """What one Wan model accepts.  ``kind`` is ``"t2v"`` (``size``) or ``"i2v"`` (``resolution``)."""

    kind: str
    durations: tuple[int, ...] = (5,)
    default_duration: int = 5
    sizes: tuple[str, ...] = ()  # t2v
    default_size: str = ""
    resolutions: tuple[str, ...] = ()  # i2v
    default_resolution: str = ""


DEFAULT_MODELS: dict[str, ModelSpec] = {
    "wan2.2-t2v-plus": ModelSpec("t2v", sizes=SIZES_480P + SIZES_1080P, default_size="1920*1080"),
    "wan2.2-i2v-plus": ModelSpec("i2v", resolutions=("480P", "1080P"), default_resolution="1080P"),
    "wan2.2-i2v-flash": ModelSpec("i2v", resolutions=("480P", "720P"), default_resolution="720P"),
    "wan2.5-t2v-preview": ModelSpec(
        "t2v", durations=(5, 10), sizes=SIZES_480P + SIZES_720P + SIZES_1080P, default_size="1920*1080"
    ),
    "wan2.5-i2v-preview": ModelSpec("i2v", durations=(5, 10), resolutions=("480P", "720P", "1080P"), default_resolution="1080P"),
    "wanx2.1-t2v-turbo": ModelSpec("t2v", sizes=SIZES_480P + SIZES_720P, default_size="1280*720"),
    "wanx2.1-t2v-plus": ModelSpec("t2v", sizes=SIZES_720P, default_size="1280*720"),
    "wanx2.1-i2v-turbo": ModelSpec("i2v", resolutions=("480P", "720P"), default_resolution="720P"),
    "wanx2.1-i2v-plus": ModelSpec("i2v", resolutions=("720P",), default_resolution="720P"),
}


def model_table(models: Mapping[str, ModelSpec] | Iterable[str] | None) -> dict[str, ModelSpec]:
    if models is None:
        return dict(DEFAULT_MODELS)
    if isinstance(models, Mapping):
        return dict(models)
    table: dict[str, ModelSpec] = {}
    for name in models:
        if name not in DEFAULT_MODELS:
            raise ValueError(f"unknown Wan model {name!r}: pass a mapping of name -> ModelSpec instead")
        table[name] = DEFAULT_MODELS[name]
    return table
