"""Test data for the UI unit tests: a small synthetic bundle and wheel shaped like Airflow's."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from leoflow.server.ui.bundle import wheel_filename

MAIN_INDEX = (
    b'<!doctype html>\n<html><head><base href="{{ backend_server_base_url }}" />\n'
    b'<script type="module" crossorigin src="./static/assets/index-AbC123.js"></script>\n'
    b'</head><body><div id="root"></div></body></html>\n'
)
LOGIN_INDEX = (
    b'<!doctype html>\n<html><head><base href="{{ backend_server_base_url }}" />\n'
    b'<script type="module" crossorigin src="./auth/static/assets/index-Login1.js"></script>\n'
    b'</head><body><div id="root"></div></body></html>\n'
)
MAIN_JS = b"const api={method:`GET`,url:`/api/v2/dags`};\n" * 200
DIST_FILES: dict[str, bytes] = {
    "index.html": MAIN_INDEX,
    "assets/index-AbC123.js": MAIN_JS,
    "assets/tiny-0001.js": b"export{};",
    "assets/sqlparser-XyZ.wasm": b"\0asm\x01\0\0\0" + b"\0" * 4000,
    "assets/codicon-Q.ttf": b"\0\1\0\0" + b"font" * 600,
    "assets/codiconStyles-Q.css": b".codicon{}\n" * 200,
    "i18n/locales/en/common.json": b'{"key": "value"}\n' * 100,
    "pin_32.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 2000,
}
LOGIN_FILES: dict[str, bytes] = {
    "index.html": LOGIN_INDEX,
    "assets/index-Login1.js": b"console.log('login');\n" * 100,
    "pin_32.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) under ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def make_wheel(directory: Path, version: str, extra: dict[str, bytes] | None = None) -> str:
    """Write a wheel-shaped zip holding both dists (plus ``extra``); return its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_filename(version)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("airflow/__init__.py", "")
        for rel, data in DIST_FILES.items():
            zf.writestr(f"airflow/ui/dist/{rel}", data)
        for rel, data in LOGIN_FILES.items():
            zf.writestr(f"airflow/api_fastapi/auth/managers/simple/ui/dist/{rel}", data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()
