"""``@skewgate/browser`` is not on the npm registry: the two ways README.md gives to get it work.

A fresh app directory (no network: ``npm --offline``) gets the companion by
``npm install <checkout>/clients/browser`` (a link to the checkout) or by installing the
tarball ``npm pack`` makes of it (a copy); either way ``import { createClockSync } from
'@skewgate/browser'`` works in Node and bundles with esbuild, and the types ship with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import REPO

COMPANION = REPO / "clients" / "browser"
ESBUILD = REPO / "node_modules" / "esbuild" / "bin" / "esbuild"
USE = (
    "import { createClockSync } from '@skewgate/browser';\n"
    "const skew = createClockSync({ url: 'https://api.example.com', sessionId: 's-1' });\n"
    "console.log(typeof skew.headers, typeof skew.sync);\n"
    "skew.stop();\n"
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def run(argv: list[str], cwd: Path) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def new_app(path: Path) -> Path:
    path.mkdir()
    (path / "package.json").write_text(
        json.dumps({"name": "app", "version": "1.0.0", "private": True, "type": "module"})
    )
    (path / "main.js").write_text(USE)
    return path


def check_app(app: Path, node: str) -> None:
    assert run([node, "main.js"], app).split() == ["function", "function"]
    installed = app / "node_modules" / "@skewgate" / "browser"
    assert (installed / "index.d.ts").is_file()
    if not ESBUILD.exists():
        pytest.skip("root node_modules missing: run `make venv` (npm ci)")
    bundle = run([str(ESBUILD), "main.js", "--bundle", "--format=esm",
                  "--platform=browser", "--log-level=warning"], app)
    assert "createClockSync" in bundle and "/v1/clock" in bundle


def test_npm_install_of_the_checkout_directory(tmp_path: Path) -> None:
    npm, node = tool("npm"), tool("node")
    app = new_app(tmp_path / "app")
    run([npm, "install", "--offline", "--no-audit", "--no-fund", str(COMPANION)], app)
    check_app(app, node)


def test_npm_pack_tarball_is_a_self_contained_copy(tmp_path: Path) -> None:
    npm, node = tool("npm"), tool("node")
    packed = tmp_path / "packed"
    packed.mkdir()
    out = run([npm, "pack", "--pack-destination", str(packed), "--json"], COMPANION)
    (entry,) = json.loads(out)
    assert sorted(f["path"] for f in entry["files"]) == [
        "README.md", "index.d.ts", "package.json", "skewgate.js"
    ]
    app = new_app(tmp_path / "app")
    run([npm, "install", "--offline", "--no-audit", "--no-fund",
         str(packed / entry["filename"])], app)
    assert not (app / "node_modules" / "@skewgate" / "browser").is_symlink()
    check_app(app, node)
