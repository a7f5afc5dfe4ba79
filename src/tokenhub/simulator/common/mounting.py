"""A fake mounted under a path prefix (as the operator simulator mounts each one)."""

from __future__ import annotations

from aiohttp import web

MOUNT_PREFIX_KEY = web.AppKey("tokenhub_fake_mount_prefix", str)


def public_base(request: web.Request) -> str:
    """``scheme://host`` plus the prefix the fake is mounted under (``MOUNT_PREFIX_KEY``, "" at the root).

    Where the URLs a fake hands out (result videos, images) must start to reach it again.
    """
    return f"{request.scheme}://{request.host}{request.app.get(MOUNT_PREFIX_KEY, '')}"


def local_path(request: web.Request) -> str:
    """The request path as the fake sees it: without the prefix it is mounted under."""
    prefix = request.app.get(MOUNT_PREFIX_KEY, "")
    return request.path[len(prefix) :] if prefix and request.path.startswith(prefix + "/") else request.path
