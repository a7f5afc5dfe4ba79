"""Kling's JWT authentication (HS256 tokens signed with the secret key of an access key)."""

from __future__ import annotations

import warnings

import jwt
from aiohttp import web

from tokenhub.simulator.kling.errors import KlingError
from tokenhub.simulator.kling.tasks import FakeKlingState


def authenticate(request: web.Request, state: FakeKlingState) -> str:
    """Verify Kling's JWT; return the access key (the task owner)."""
    authorization = request.headers.get("Authorization", "").strip()
    if state.credentials is None:
        _, _, token = authorization.partition(" ")
        try:
            iss = jwt.decode(token.strip(), options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError:
            iss = None
        return iss if isinstance(iss, str) else ""
    if not authorization:
        raise KlingError(401, 1001, "Authorization is empty.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise KlingError(401, 1002, "Authorization is invalid: expected 'Bearer <token>'.")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002, "Authorization is invalid: the token cannot be decoded.") from None
    if header.get("alg") != "HS256" or header.get("typ") != "JWT":
        raise KlingError(401, 1002, 'Authorization is invalid: the token header must be {"alg": "HS256", "typ": "JWT"}.')
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise KlingError(401, 1002, "Authorization is invalid: the token has no iss (access key).")
    secret = state.credentials.get(iss)
    if secret is None:
        raise KlingError(401, 1000, "Authentication failed: unknown access key.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "nbf", "iss"]})
    except jwt.ExpiredSignatureError:
        raise KlingError(401, 1004, "Authorization has expired.") from None
    except jwt.ImmatureSignatureError:
        raise KlingError(401, 1003, "Authorization is not yet valid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise KlingError(401, 1002, f"Authorization is invalid: the token has no {exc.claim}.") from None
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002, "Authorization is invalid: signature verification failed.") from None
    return iss
