"""The API documentation page (/schema) from local files: Swagger UI's assets as shipped by the
swagger-ui-py package (a pinned Swagger UI 5 build), served under /schema/assets."""

from __future__ import annotations

from importlib.resources import files

from litestar import Router
from litestar.static_files import create_static_files_router

from ..auth import PUBLIC

ASSETS = "/schema/assets"
SWAGGER_ASSETS = {"js_url": f"{ASSETS}/swagger-ui-bundle.js", "css_url": f"{ASSETS}/swagger-ui.css",
                  "standalone_preset_js_url": f"{ASSETS}/swagger-ui-standalone-preset.js"}


def swagger_assets_router() -> Router:
    return create_static_files_router(ASSETS, [files("swagger_ui") / "static"], name="swagger-assets", opt=dict(PUBLIC),
                                      include_in_schema=False)
