"""A browser's side of the console, without a browser: a cookie jar, the CSRF token the
session answers, and the same-origin header a browser sends."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


class ConsoleClient:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.csrf = ""

    @classmethod
    def jar(cls) -> aiohttp.CookieJar:
        # unsafe: the test server is an IP address, whose cookies a default jar drops.
        return aiohttp.CookieJar(unsafe=True)

    async def whoami(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/ui/api/session") as response:
            assert response.status == 200
            data: dict[str, Any] = await response.json()
        self.csrf = data["csrf_token"] if "csrf_token" in data else ""
        return data

    async def sign_in(self, key: str) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        await self.whoami()
        async with self.http.post(
            self.url + "/ui/api/session",
            json={"key": key},
            headers={"X-CSRF-Token": self.csrf, "Origin": self.url},
        ) as response:
            data: dict[str, Any] = await response.json()
            if response.status == 200:
                self.csrf = data["csrf_token"]
            return response.status, data, response

    async def sign_out(self) -> int:
        async with self.http.post(
            self.url + "/ui/api/session/end",
            json={},
            headers={"X-CSRF-Token": self.csrf, "Origin": self.url},
        ) as response:
            return response.status

    async def call(
        self, method: str, path: str, body: Any = None, *, csrf: str | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf, "Origin": self.url}
        async with self.http.request(
            method, self.url + "/ui/api/call" + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            try:
                data: Any = json.loads(text)
            except ValueError:
                data = text
            return response.status, data, response
