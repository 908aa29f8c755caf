"""The core's module surface: helpers are private, every other module is documented.

A module of ``fleetprompt_core`` whose name starts with an underscore is a
helper of its own package (ADR 0030): nothing outside that package imports
it. Every other module is part of the library and ``docs/api.md`` names it.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import grimp

import fleetprompt_core

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fleetprompt_core", "fleetprompt_adapters", "fleetprompt_http")


def _core_modules() -> list[str]:
    return [
        info.name for info in pkgutil.walk_packages(fleetprompt_core.__path__, "fleetprompt_core.")
    ]


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def _outside_imports(graph: grimp.ImportGraph, module: str) -> list[str]:
    """Modules that import ``module`` from outside the package that holds it."""
    package = module.rsplit(".", 1)[0]
    return sorted(
        importer
        for importer in graph.find_modules_that_directly_import(module)
        if importer != package and not importer.startswith(package + ".")
    )


def test_the_services_helpers_are_private() -> None:
    """The use cases' helpers (authorization, idempotency, paging, audit, roles) are
    underscored modules, not public ones beside the use cases."""
    private = {m for m in _core_modules() if _is_private(m)}
    assert {
        "fleetprompt_core.services._authz",
        "fleetprompt_core.services._idempotency",
        "fleetprompt_core.services._paging",
        "fleetprompt_core.services._audit",
        "fleetprompt_core.services._roles",
    } <= private


def test_private_modules_are_imported_only_inside_their_package() -> None:
    """No adapter, HTTP module or other layer of the core imports another package's helper."""
    graph = grimp.build_graph(*PACKAGES)
    leaks = {
        module: importers
        for module in _core_modules()
        if _is_private(module) and (importers := _outside_imports(graph, module))
    }
    assert leaks == {}


def test_the_check_sees_an_import_from_outside() -> None:
    """The check is live: a module outside ``services`` importing ``services._audit`` is seen."""
    graph = grimp.build_graph(*PACKAGES)
    graph.add_import(
        importer="fleetprompt_http.app",
        imported="fleetprompt_core.services._audit",
    )
    assert _outside_imports(graph, "fleetprompt_core.services._audit") == ["fleetprompt_http.app"]


def test_every_public_module_is_documented_in_the_api_page() -> None:
    """Each module of the core that is not private is named in docs/api.md."""
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(fleetprompt_core(?:\.\w+)*)`", page))
    undocumented = [m for m in _core_modules() if not _is_private(m) and m not in named]
    assert undocumented == []
