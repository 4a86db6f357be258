"""Packaging the Lambda code without Docker and without network.

The zip holds the ``stagepilot`` package (minus the CLI and the local simulator) and the runtime
dependencies pinned in ``lambdas/requirements.txt``, copied from the interpreter that runs the synth.
Those pins must be installed at exactly the pinned version and must be pure Python: the synth runs on
any OS/CPU, the function runs on Linux arm64, and a compiled extension would only work by accident.
``boto3``/``botocore`` are not bundled: the Lambda runtime provides them.

The zip also carries bytecode for the runtime's Python (``unchecked-hash`` ``.pyc`` files, which the
interpreter uses without looking at the source's time stamp). ``/var/task`` is read-only, so without them
every cold start compiles stagepilot, Powertools and typing_extensions from source before the first event
(measured in ``docs/performance.md``). Bytecode is only valid for one Python minor version, so only a synth
on the runtime's version (``RUNTIME_PYTHON``) writes it; a synth on another supported CPython (3.11, 3.12:
``make`` takes the newest it finds) ships the plain sources, which run the same, and says so in one line.
The two zips differ, so the asset hash tells them apart (``zip_format``).

The Docker image is only a fallback that CDK never pulls, because ``LocalBundling.try_bundle`` always
succeeds or fails the synth with a message saying what to install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePath
from typing import Any

import jsii
from aws_cdk import Acknowledgment, AssetHashType, BundlingOptions, ILocalBundling, Validations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
PACKAGE = "stagepilot"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# The Python the zip's bytecode is built for: the runtime's (a test keeps the two in step).
RUNTIME_PYTHON = (3, 13)
# Where Lambda unpacks the zip: tracebacks name these paths, as they would for source files.
TASK_ROOT = "/var/task"
# What the bundler makes of the same sources. The asset hash covers the sources, not this file, and a
# deployment whose hash is unchanged keeps the zip it has: bump this when the zip's content changes for
# the same sources (2: bytecode added; 3: dataclasses' generated methods compiled, handlers/dataclass_code.py).
BUNDLE_FORMAT = "3"
# Parts of the package that never run in Lambda (operator CLI, local simulator, explain and what-if).
EXCLUDED_SUBPACKAGES = ("cli", "local", "operator")
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")
# Paths under lambdas/ that do not change the zip, so they must not change the asset hash either.
HASH_EXCLUDES = [
    "**/__pycache__",
    "**/*.pyc",
    *(f"{PACKAGE}/{sub}" for sub in EXCLUDED_SUBPACKAGES),
]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*$")


# cdk-nag's "not the latest Python runtime", acknowledged on each function (acknowledge_runtime).
RUNTIME_ACKNOWLEDGMENT = Acknowledgment(
    id="AwsSolutions-L1",
    reason=(
        "Python 3.13 on purpose: a synth on 3.13 ships bytecode built by the synth's interpreter, which must be "
        "the runtime's version, and 3.13 is the newest CPython the project builds and tests on (CI runs on it). "
        "Without that bytecode every cold start compiles the code from source (docs/performance.md)."
    ),
)


def acknowledge_runtime(function: Construct) -> None:
    """The runtime finding, on this function and nothing else."""
    Validations.of(function).acknowledge(RUNTIME_ACKNOWLEDGMENT)


class BundlingError(RuntimeError):
    """The Lambda zip cannot be built from this interpreter; the message says what to fix."""


def read_pins(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """``name==version`` lines of a requirements file; anything else (besides comments) is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise BundlingError(f"{requirements}:{number}: expected 'name==version', got {raw.strip()!r}")
        pins[match.group(1)] = match.group(2)
    return pins


def _ignore_pycache(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__" or name.endswith(".pyc")}


def copy_package(output_dir: Path, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    """The ``stagepilot`` sources, without the subpackages that only run on an operator's machine."""
    source = lambdas_dir / PACKAGE

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = _ignore_pycache(directory, names)
        if Path(directory) == source:
            ignored.update(name for name in names if name in EXCLUDED_SUBPACKAGES)
        return ignored

    shutil.copytree(source, output_dir / PACKAGE, ignore=ignore, dirs_exist_ok=True)


def copy_distribution(name: str, version: str, output_dir: Path) -> int:
    """Copy one installed, pure-Python distribution's files into ``output_dir``; returns the file count."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundlingError(
            f"Lambda dependency {name}=={version} (lambdas/requirements.txt) is not installed in this "
            "interpreter; install the pinned requirements (make synth does) and synth again"
        ) from exc
    if dist.version != version:
        raise BundlingError(
            f"Lambda dependency {name} is pinned to {version} in lambdas/requirements.txt but "
            f"{dist.version} is installed; reinstall the pinned requirements"
        )
    files = [PurePath(str(f)) for f in dist.files or []]
    if not files:
        raise BundlingError(f"Lambda dependency {name}=={version} has no file list (RECORD); reinstall it")
    compiled = sorted(str(f) for f in files if f.suffix in COMPILED_SUFFIXES)
    if compiled:
        raise BundlingError(
            f"Lambda dependency {name}=={version} has compiled extensions ({', '.join(compiled[:3])}); "
            "local bundling copies pure-Python packages only. Drop it from lambdas/requirements.txt or "
            "package it for linux arm64 another way"
        )
    copied = 0
    for relative in files:
        # Skip console scripts (../../bin/...), bytecode caches and anything outside site-packages.
        if ".." in relative.parts or "__pycache__" in relative.parts or relative.suffix == ".pyc":
            continue
        source = Path(str(dist.locate_file(relative)))
        if not source.is_file():
            continue
        target = output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    return copied


def ships_bytecode(version: tuple[int, ...] = (), implementation: str = "") -> bool:
    """Whether this synth's Python writes bytecode the runtime loads: CPython of the runtime's version."""
    version = version or sys.version_info[:3]
    implementation = implementation or sys.implementation.name
    return implementation == "cpython" and tuple(version[:2]) == RUNTIME_PYTHON


def sources_only_note(version: tuple[int, ...] = (), implementation: str = "") -> str:
    """The one line a synth on another Python prints: what the zip lacks and how to get it."""
    version = version or sys.version_info[:3]
    implementation = implementation or sys.implementation.name
    wanted = ".".join(map(str, RUNTIME_PYTHON))
    running = f"{implementation} {'.'.join(map(str, version[:3]))}"
    return (
        f"stagepilot bundling: this synth runs on {running}, not the functions' Python {wanted}, so the zip "
        f"ships plain sources without bytecode (each cold start compiles them); synth on CPython {wanted} "
        "to ship bytecode"
    )


# What the Lambda runtime provides besides the zip (and so is not bundled).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six")


def runtime_stand_in(folder: Path) -> Path:
    """``folder`` made to hold what the runtime adds to ``sys.path`` beside the zip: links to this
    interpreter's boto3 and its dependencies (compiled by pip, as the runtime's are). For tests and
    benchmarks that import the zip as Lambda does."""
    folder.mkdir(parents=True, exist_ok=True)
    for module in RUNTIME_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise BundlingError(f"{module} is not installed in this interpreter; install the pinned requirements")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


def compile_bytecode(output_dir: Path) -> None:
    """``__pycache__/*.pyc`` for every module in ``output_dir``, valid whatever the files' time stamps."""
    for source in sorted(output_dir.rglob("*.py")):
        relative = source.relative_to(output_dir).as_posix()
        try:
            py_compile.compile(
                str(source),
                cfile=importlib.util.cache_from_source(str(source)),
                dfile=f"{TASK_ROOT}/{relative}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as exc:
            raise BundlingError(
                f"{relative} in the Lambda zip does not compile on Python {sys.version.split()[0]}: "
                f"{exc.exc_type_name} {exc.exc_value}"
            ) from exc


def entry_modules(output_dir: Path) -> list[str]:
    """The Lambda entry modules in the zip: those that load under ``heap.pause()``."""
    handlers = output_dir / PACKAGE / "handlers"
    return [  # "heap.pause()" is what an entry module calls first
        f"{PACKAGE}.handlers.{source.stem}"
        for source in sorted(handlers.glob("*.py"))
        if "heap.pause()" in source.read_text(encoding="utf-8")
    ]


def compile_dataclass_methods(output_dir: Path) -> None:
    """The methods dataclasses write for every class the entry modules define, compiled once here
    (``handlers/dataclass_code.py``), in a fresh interpreter that imports the zip's own modules."""
    from stagepilot.handlers.dataclass_code import SHIPPED

    modules = entry_modules(output_dir)
    if not modules:
        return
    shipped = output_dir / PACKAGE / "handlers" / SHIPPED
    shipped.unlink(missing_ok=True)  # a bundle written again: record from the sources, not the old file
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(output_dir)!r})\n"
        "from stagepilot.handlers import dataclass_code\n"
        f"dataclass_code.write({str(shipped)!r}, {modules!r})\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-B", "-c", script], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BundlingError(f"compiling the dataclasses' methods for the zip failed:\n{done.stderr[-2000:]}")


def bundle(output_dir: Path, lambdas_dir: Path = LAMBDAS_DIR, *, bytecode: bool | None = None) -> None:
    """Everything that goes into the function zip, written into ``output_dir``: with bytecode when this
    synth runs on the runtime's Python (``bytecode`` None), plain sources otherwise."""
    copy_package(output_dir, lambdas_dir)
    for name, version in read_pins(lambdas_dir / "requirements.txt").items():
        copy_distribution(name, version, output_dir)
    if ships_bytecode() if bytecode is None else bytecode:
        compile_bytecode(output_dir)
        compile_dataclass_methods(output_dir)
    else:
        print(sources_only_note(), file=sys.stderr)


@jsii.implements(ILocalBundling)
class OfflineBundling:
    """CDK local bundling hook: builds the zip content in-process, no Docker, no network."""

    def __init__(self, lambdas_dir: Path = LAMBDAS_DIR) -> None:
        self._lambdas_dir = lambdas_dir

    def try_bundle(self, output_dir: str, options: Any) -> bool:  # options arrives positionally
        bundle(Path(output_dir), self._lambdas_dir)
        return True


def zip_format(bytecode: bool | None = None) -> str:
    """``BUNDLE_FORMAT``, marked when the zip has no bytecode: the two zips of the same sources differ."""
    return BUNDLE_FORMAT if (ships_bytecode() if bytecode is None else bytecode) else f"{BUNDLE_FORMAT}-sources"


def function_code(lambdas_dir: Path = LAMBDAS_DIR, *, bundle_format: str | None = None) -> lambda_.Code:
    """One asset for every function; its hash covers the sources and the pins (both under lambdas/), and
    the bundling options: the runtime's image and the zip's format (``zip_format()``)."""
    if bundle_format is None:
        bundle_format = zip_format()
    return lambda_.Code.from_asset(
        str(lambdas_dir),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=HASH_EXCLUDES,
        bundling=BundlingOptions(
            image=RUNTIME.bundling_image,
            # Not read by the local bundler: there to change the asset hash when the zip's layout does.
            environment={"STAGEPILOT_BUNDLE_FORMAT": bundle_format},
            # jsii hands try_bundle its options as one positional struct, not as the keyword arguments
            # of the generated protocol, so the class cannot match that signature.
            local=OfflineBundling(lambdas_dir),  # type: ignore[arg-type]
        ),
    )
