"""The API documentation page (/schema) from local files: Swagger UI's assets as shipped by the
swagger-ui-bundle package (a pinned Swagger UI build), served under /schema/assets."""

from __future__ import annotations

from litestar import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from ..auth import PUBLIC

ASSETS = "/schema/assets"
SWAGGER_ASSETS = {"js_url": f"{ASSETS}/swagger-ui-bundle.js", "css_url": f"{ASSETS}/swagger-ui.css",
                  "standalone_preset_js_url": f"{ASSETS}/swagger-ui-standalone-preset.js"}


def swagger_assets_router() -> Router:
    return create_static_files_router(ASSETS, [swagger_ui_path], name="swagger-assets", opt=dict(PUBLIC),
                                      include_in_schema=False)
