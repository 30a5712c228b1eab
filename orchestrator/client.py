"""A Python client with the interface of DeepDetect's ``dd_client``.

Code written for DeepDetect works by changing its import line only::

    from orchestrator.client import DD

    dd = DD("localhost", 8080)
    dd.set_return_format(dd.RETURN_PYTHON)
    dd.post_predict("imageserv", ["http://.../a.jpg"], {}, {}, {"best": 3})
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class DDCommunicationError(Exception):
    """The server could not be reached or did not answer."""


class DD:
    RETURN_PYTHON = 0
    RETURN_JSON = 1
    RETURN_NONE = 2

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8080,
        proto: int = 0,
        apiversion: str = "0.1",
        api_key: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        scheme = "https" if proto == 1 else "http"
        self.apiversion = apiversion
        self.return_format = self.RETURN_PYTHON
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=f"{scheme}://{host}:{port}", headers=headers, timeout=timeout
        )

    def set_return_format(self, return_format: int) -> None:
        self.return_format = return_format

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise DDCommunicationError(f"{method} {path}: {e}") from e
        if self.return_format == self.RETURN_NONE:
            return None
        if self.return_format == self.RETURN_JSON:
            return response.text
        try:
            return response.json()
        except json.JSONDecodeError:
            return response.text

    # API calls, named and ordered as in dd_client

    def info(self) -> Any:
        return self._request("GET", "/info")

    def put_service(
        self,
        sname: str,
        model: dict[str, Any],
        description: str,
        mllib: str,
        parameters_input: dict[str, Any],
        parameters_mllib: dict[str, Any],
        parameters_output: dict[str, Any],
        mltype: str = "supervised",
    ) -> Any:
        body = {
            "description": description,
            "mllib": mllib,
            "type": mltype,
            "parameters": {
                "input": parameters_input,
                "mllib": parameters_mllib,
                "output": parameters_output,
            },
            "model": model,
        }
        return self._request("PUT", f"/services/{sname}", body)

    def get_service(self, sname: str) -> Any:
        return self._request("GET", f"/services/{sname}")

    def delete_service(self, sname: str, clear: str | None = None) -> Any:
        return self._request("DELETE", f"/services/{sname}")

    def post_predict(
        self,
        sname: str,
        data: list[str],
        parameters_input: dict[str, Any],
        parameters_mllib: dict[str, Any],
        parameters_output: dict[str, Any],
    ) -> Any:
        body = {
            "service": sname,
            "parameters": {
                "input": parameters_input,
                "mllib": parameters_mllib,
                "output": parameters_output,
            },
            "data": data,
        }
        return self._request("POST", "/predict", body)

    def close(self) -> None:
        self._http.close()
