"""server.json (the MCP registry's format) describes the server this repository builds."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fleetprompt_http.cli import main
from fleetprompt_http.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


def _entry() -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return entry


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return project


def test_m_tool_01_server_json_names_this_package_and_its_command() -> None:
    """Name, version, PyPI package, extra and command agree with pyproject.toml and the CLI."""
    entry, project = _entry(), _project()
    assert entry["$schema"].startswith("https://static.modelcontextprotocol.io/schemas/")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", entry["name"])
    assert f"<!-- mcp-name: {entry['name']} -->" in (ROOT / "README.md").read_text("utf-8")
    assert entry["version"] == project["version"]
    assert len(entry["description"]) <= 100
    (package,) = entry["packages"]
    assert package["registryType"] == "pypi"
    assert package["identifier"] == project["name"]
    assert package["version"] == project["version"]
    assert package["transport"] == {"type": "stdio"}
    (runtime,) = package["runtimeArguments"]
    assert runtime["value"] == f"{project['name']}[server]"
    assert any(dep.startswith("mcp") for dep in project["optional-dependencies"]["server"])
    assert [argument["value"] for argument in package["packageArguments"]] == ["mcp"]
    assert "mcp" in main.commands  # type: ignore[attr-defined]
    (remote,) = entry["remotes"]
    assert remote["type"] == "streamable-http"
    assert remote["url"].endswith("/mcp")


def test_m_auth_01_server_json_variables_are_settings_the_server_reads() -> None:
    """Every environment variable server.json asks for is a setting; the token is a secret."""
    (package,) = _entry()["packages"]
    variables = {item["name"]: item for item in package["environmentVariables"]}
    assert variables["FLEETPROMPT_MCP_TOKEN"]["isSecret"] is True
    settings = Settings.from_env(
        {
            "FLEETPROMPT_DATABASE_URL": "sqlite:////tmp/elsewhere.db",
            "FLEETPROMPT_MCP_TOKEN": " fpat_example ",
        }
    )
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"
    assert settings.mcp_token == "fpat_example"
    assert "fpat_example" not in repr(settings)
    (remote,) = _entry()["remotes"]
    (header,) = remote["headers"]
    assert header["name"] == "Authorization"
    assert header["isSecret"] is True


def test_m_auth_01_public_url_is_an_https_origin() -> None:
    """FLEETPROMPT_PUBLIC_URL (the Host and Origin /mcp answers) is an origin: https, or http
    on loopback; a path, credentials or another scheme stop the server with the variable."""
    for raw, expected in (
        ("https://FleetPrompt.example.com/", "https://fleetprompt.example.com"),
        ("https://fleetprompt.example.com:8443", "https://fleetprompt.example.com:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("", None),
    ):
        assert Settings.from_env({"FLEETPROMPT_PUBLIC_URL": raw}).public_url == expected
    for bad in (
        "http://fleetprompt.example.com",
        "https://fleetprompt.example.com/api",
        "https://user:pass@fleetprompt.example.com",
        "ftp://fleetprompt.example.com",
        "https://",
        "https://fleetprompt.example.com?x=1",
    ):
        with pytest.raises(ConfigError, match="FLEETPROMPT_PUBLIC_URL"):
            Settings.from_env({"FLEETPROMPT_PUBLIC_URL": bad})
