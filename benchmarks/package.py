"""The deployed code: zip size of the Lambda asset, and the synth time of the app with real (offline,
local) bundling into a fresh output directory, so the asset is built, not reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks import cli

ROOT = Path(__file__).resolve().parents[1]

SYNTH = """
import sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
from app import build_app
imported = time.perf_counter()
build_app(outdir={outdir!r}).synth()
done = time.perf_counter()
print(imported - t, done - imported)
"""


def _zip_dir(directory: Path, target: Path) -> int:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory))
    return target.stat().st_size


def run() -> dict[str, Any]:
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    with tempfile.TemporaryDirectory(prefix="stagepilot-bench-") as outdir:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", SYNTH.format(root=str(ROOT), outdir=outdir)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        wall = time.perf_counter() - started
        import_s, synth_s = (float(x) for x in done.stdout.strip().splitlines()[-1].split())
        assets = [p for p in Path(outdir).glob("asset.*") if p.is_dir()]
        if len(assets) != 1:
            raise RuntimeError(f"expected one Lambda asset in {outdir}, found {len(assets)}")
        asset = assets[0]
        files = [p for p in asset.rglob("*") if p.is_file()]
        unzipped = sum(p.stat().st_size for p in files)
        zipped = _zip_dir(asset, Path(outdir) / "code.zip")
        biggest: dict[str, int] = {}
        for p in files:
            top = p.relative_to(asset).parts[0]
            biggest[top] = biggest.get(top, 0) + p.stat().st_size
    return {
        "zip_bytes": zipped,
        "unzipped_bytes": unzipped,
        "files": len(files),
        "largest_top_level": dict(sorted(biggest.items(), key=lambda kv: -kv[1])[:6]),
        "synth_wall_seconds": wall,
        "synth_import_seconds": import_s,
        "synth_seconds": synth_s,
    }


def main(argv: list[str] | None = None) -> int:
    cli.parser("benchmarks.package", __doc__).parse_args(argv)
    print(json.dumps(run(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
