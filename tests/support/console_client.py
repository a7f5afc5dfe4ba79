"""A console visitor over plain HTTP: its own cookies, its own source address on loopback (127.0.0.x)."""

from __future__ import annotations

import http.client
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    seconds: float

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


@dataclass
class Visitor:
    base_url: str
    source: str = "127.0.0.1"  # any 127.0.0.0/8 address: Linux routes them all to the loopback gateway
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Answer:
        url = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(self.source, 0))
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";")[0]
        return Answer(response.status, response.headers, text, time.monotonic() - started)

    def get(self, path: str, **kwargs: object) -> Answer:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def csrf(self, path: str = "/login") -> str:
        page = self.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert found, f"no form on {path}: {page.status}"
        return found.group(1)

    def post(self, path: str, form: dict[str, str], csrf_from: str | None = None) -> Answer:
        return self.request("POST", path, form={"csrf": self.csrf(csrf_from or path), **form})

    def log_in(self, email: str, password: str) -> Answer:
        return self.post("/login", {"email": email, "password": password})

    def signed_in(self) -> bool:
        answer = self.get("/keys")
        return answer.status == 200
