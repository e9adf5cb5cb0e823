"""The layout keeps its promises: routes are thin, no router imports another, and the
ownership check lives in one typed dependency and the domain, not pasted into routes."""

from __future__ import annotations

import ast
from pathlib import Path

from app.web.factory import ROUTERS

WEB = Path(__file__).resolve().parent.parent / "app" / "web"


def router_modules() -> set[str]:
    return {router.routes[0].endpoint.__module__ for router in ROUTERS if router.routes}  # type: ignore[attr-defined]


def imports_of(module: str) -> set[str]:
    tree = ast.parse((WEB / (module.rsplit(".", 1)[1] + ".py")).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_router_imports_another() -> None:
    modules = router_modules()
    assert {"app.web.gallery_api", "app.web.gallery_pages", "app.web.auth"} <= modules
    for module in modules:
        assert not (imports_of(module) & (modules - {module})), f"{module} imports a router"


def test_the_ownership_check_is_not_pasted_into_routes() -> None:
    for module in router_modules():
        source = (WEB / (module.rsplit(".", 1)[1] + ".py")).read_text()
        assert "ensure_may_change" not in source, f"{module} checks ownership itself"
        assert "image_owners" not in source, module
