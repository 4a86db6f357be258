"""Offline packaging: the zip content is built from this interpreter, and refuses what would break."""

from __future__ import annotations

import importlib.util
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra import bundling

    out = tmp_path_factory.mktemp("bundle")
    assert bundling.OfflineBundling().try_bundle(str(out), None) is True
    return out


def test_zip_holds_the_handlers_and_the_pinned_dependencies(bundled: Path) -> None:
    from infra import bundling

    assert (bundled / "stagepilot" / "handlers" / "__init__.py").is_file()
    assert (bundled / "stagepilot" / "config.py").is_file()
    assert (bundled / "stagepilot" / "routing.py").is_file()
    assert (bundled / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (bundled / "jmespath" / "__init__.py").is_file()
    assert (bundled / "typing_extensions.py").is_file()
    for name, version in bundling.read_pins().items():
        normalized = name.replace("-", "_").lower()
        assert any(p.name.lower() == f"{normalized}-{version}.dist-info" for p in bundled.iterdir()), (
            f"{name}=={version} missing"
        )


def test_zip_leaves_out_operator_tools_caches_and_boto3(bundled: Path) -> None:
    from infra import bundling

    assert not (bundled / "stagepilot" / "cli").exists()
    assert not (bundled / "stagepilot" / "local").exists()
    assert not (bundled / "stagepilot" / "operator").exists()
    tag = sys.implementation.cache_tag
    assert [p for p in bundled.rglob("*.pyc") if p.parent.name != "__pycache__" or tag not in p.name] == []
    assert not (bundled / "boto3").exists()  # provided by the Lambda runtime
    assert not [p for p in bundled.rglob("*") if p.suffix in bundling.COMPILED_SUFFIXES]
    assert not (bundled / "bin").exists()


def _pyc(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


@pytest.fixture
def on_the_runtimes_python() -> None:
    from infra import bundling

    if not bundling.ships_bytecode():
        pytest.skip("bytecode is built on the runtime's Python only (CI runs on it)")


ON_THE_RUNTIMES_PYTHON = pytest.mark.usefixtures("on_the_runtimes_python")


@ON_THE_RUNTIMES_PYTHON
def test_zip_ships_bytecode_for_every_module_valid_whatever_the_time_stamps(bundled: Path) -> None:
    """Lambda's /var/task is read-only: without these, every cold start compiles the code from source."""
    from infra import bundling

    assert bundling.RUNTIME.name == "python{}.{}".format(*bundling.RUNTIME_PYTHON)
    sources = list(bundled.rglob("*.py"))
    assert len(sources) > 100
    for source in sources:
        header = _pyc(source).read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        # PEP 552 flags: 0b01 = hash-based and not checked against the source (extraction resets mtimes).
        assert int.from_bytes(header[4:8], "little") == 0b01, source
    code = marshal.loads(_pyc(bundled / "stagepilot" / "pipeline.py").read_bytes()[16:])
    assert code.co_filename == f"{bundling.TASK_ROOT}/stagepilot/pipeline.py"


@ON_THE_RUNTIMES_PYTHON
@pytest.mark.parametrize("entry", ["composition", "replication", "moderation", "reconcile", "token"])
def test_every_dataclass_an_entry_module_loads_gets_the_methods_the_synth_compiled(bundled: Path, entry: str) -> None:
    """Compiling each dataclass's generated methods is most of what it costs a cold start
    (handlers/dataclass_code.py): in the zip, none an entry module defines while it loads is compiled again."""
    from infra import bundling

    assert bundling.entry_modules(bundled) == [
        f"stagepilot.handlers.{name}" for name in ("composition", "moderation", "reconcile", "replication", "token")
    ]
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(bundled)!r})\n"
        "from stagepilot.handlers import dataclass_code\n"
        "seen = []\n"
        "shipped = dataclass_code._exec_with\n"
        "def spying(codes):\n"
        "    run = shipped(codes)\n"
        "    def exec_spied(source, globals=None, locals=None, /):\n"
        "        seen.append(source in codes)\n"
        "        run(source, globals, locals)\n"
        "    return exec_spied\n"
        "dataclass_code._exec_with = spying\n"
        f"import stagepilot.handlers.{entry}\n"
        "print(len(seen), seen.count(False))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-B", "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    defined, compiled = map(int, done.stdout.split())
    assert defined > 20
    assert compiled == 0


def test_only_the_runtimes_python_ships_bytecode() -> None:
    from infra import bundling

    assert bundling.RUNTIME.name == "python{}.{}".format(*bundling.RUNTIME_PYTHON)
    assert bundling.ships_bytecode((*bundling.RUNTIME_PYTHON, 0), "cpython")
    assert not bundling.ships_bytecode((3, 12, 1), "cpython")
    assert not bundling.ships_bytecode((3, 13, 0), "pypy")
    assert bundling.sources_only_note((3, 11, 7), "cpython") == (
        "stagepilot bundling: this synth runs on cpython 3.11.7, not the functions' Python 3.13, so the zip ships "
        "plain sources without bytecode (each cold start compiles them); synth on CPython 3.13 to ship bytecode"
    )


def test_a_synth_on_another_python_ships_sources_and_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra import bundling

    lambdas = _lambdas_copy(tmp_path, f"jmespath=={bundling.read_pins()['jmespath']}\n")
    bundling.bundle(tmp_path / "out", lambdas, bytecode=False)
    assert (tmp_path / "out" / "stagepilot" / "__init__.py").is_file()
    assert (tmp_path / "out" / "jmespath" / "__init__.py").is_file()
    assert list((tmp_path / "out").rglob("*.pyc")) == []
    assert capsys.readouterr().err.splitlines() == [bundling.sources_only_note()]

    bundling.bundle(tmp_path / "with-bytecode", lambdas, bytecode=True)
    assert (tmp_path / "with-bytecode" / "stagepilot" / "__pycache__").is_dir()
    assert capsys.readouterr().err == ""


def test_a_module_that_does_not_compile_fails_the_synth(tmp_path: Path) -> None:
    from infra import bundling

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "broken.py").write_text("def f(:\n")
    with pytest.raises(
        bundling.BundlingError, match=r"^pkg/broken\.py in the Lambda zip does not compile .*SyntaxError"
    ):
        bundling.compile_bytecode(tmp_path)


def _lambdas_copy(tmp_path: Path, requirements: str) -> Path:
    target = tmp_path / "lambdas"
    (target / "stagepilot").mkdir(parents=True)
    shutil.copy(LAMBDAS / "stagepilot" / "__init__.py", target / "stagepilot" / "__init__.py")
    (target / "requirements.txt").write_text(requirements)
    return target


def test_a_pin_that_differs_from_the_installed_version_fails_the_synth(tmp_path: Path) -> None:
    from infra import bundling

    lambdas = _lambdas_copy(tmp_path, "jmespath==0.0.1\n")
    with pytest.raises(bundling.BundlingError, match=r"jmespath is pinned to 0\.0\.1 .* installed"):
        bundling.bundle(tmp_path / "out", lambdas)


def test_a_dependency_with_compiled_code_fails_the_synth(tmp_path: Path) -> None:
    import pydantic_core

    from infra import bundling

    lambdas = _lambdas_copy(tmp_path, f"pydantic_core=={pydantic_core.__version__}\n")
    with pytest.raises(bundling.BundlingError, match="compiled extensions"):
        bundling.bundle(tmp_path / "out", lambdas)


def test_a_missing_dependency_or_a_loose_pin_fails_the_synth(tmp_path: Path) -> None:
    from infra import bundling

    with pytest.raises(bundling.BundlingError, match="not installed"):
        bundling.bundle(tmp_path / "a", _lambdas_copy(tmp_path / "a", "no-such-dist-stagepilot==1.0\n"))
    with pytest.raises(bundling.BundlingError, match="expected 'name==version'"):
        bundling.bundle(tmp_path / "b", _lambdas_copy(tmp_path / "b", "aws-lambda-powertools>=3\n"))


def test_asset_hash_follows_sources_and_pins_but_not_caches_or_the_cli(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from infra import bundling

    lambdas = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS, lambdas, ignore=shutil.ignore_patterns("__pycache__"))

    def fingerprint() -> str:
        """The asset hash CDK gives the function code (bundling skipped, as in the other tests)."""
        app = cdk.App(context={"aws:cdk:bundling-stacks": []})
        stack = cdk.Stack(app, "Hash")
        code = bundling.function_code(lambdas).bind(stack)
        assert code.s3_location is not None
        return code.s3_location.object_key

    original = fingerprint()
    (lambdas / "stagepilot" / "cli" / "extra.py").write_text("X = 1\n")
    (lambdas / "stagepilot" / "__pycache__").mkdir(exist_ok=True)
    (lambdas / "stagepilot" / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint() == original
    (lambdas / "requirements.txt").write_text((lambdas / "requirements.txt").read_text() + "six==1.17.0\n")
    assert fingerprint() != original
    pinned = fingerprint()
    (lambdas / "stagepilot" / "config.py").write_text((lambdas / "stagepilot" / "config.py").read_text() + "\n")
    assert fingerprint() != pinned


def test_asset_hash_follows_the_bundle_format() -> None:
    """A change in what the bundler makes of the same sources (bytecode, say) must reach deployments."""
    import aws_cdk as cdk

    from infra import bundling

    def fingerprint(bundle_format: str) -> str:
        app = cdk.App(context={"aws:cdk:bundling-stacks": []})
        code = bundling.function_code(bundle_format=bundle_format).bind(cdk.Stack(app, "Hash"))
        assert code.s3_location is not None
        return code.s3_location.object_key

    assert fingerprint(bundling.BUNDLE_FORMAT) == fingerprint(bundling.BUNDLE_FORMAT)
    assert fingerprint(bundling.BUNDLE_FORMAT) != fingerprint(bundling.BUNDLE_FORMAT + "-next")
    # A zip of plain sources (a synth on another Python) is another asset than the zip with bytecode.
    assert bundling.zip_format(bytecode=True) == bundling.BUNDLE_FORMAT
    assert fingerprint(bundling.zip_format(bytecode=False)) != fingerprint(bundling.zip_format(bytecode=True))


def test_handlers_import_from_the_zip_with_only_what_the_runtime_adds(bundled: Path, tmp_path: Path) -> None:
    """The Lambda runtime adds boto3 and its dependencies; everything else must be in the zip."""
    from infra import bundling

    runtime = bundling.runtime_stand_in(tmp_path / "runtime")
    script = (
        "import importlib, importlib.machinery, sys\n"
        f"sys.path[:] = [{str(bundled)!r}, {str(runtime)!r}] + [p for p in sys.path if 'packages' not in p]\n"
        "compiled = []\n"
        "to_code = importlib.machinery.SourceFileLoader.source_to_code\n"
        "def source_to_code(self, data, path, **kw):\n"
        "    compiled.append(path)\n"
        "    return to_code(self, data, path, **kw)\n"
        "importlib.machinery.SourceFileLoader.source_to_code = source_to_code\n"
        "for automation in ('composition', 'replication', 'moderation', 'reconcile'):\n"
        "    module = importlib.import_module('stagepilot.handlers.' + automation)\n"
        "    assert callable(module.lambda_handler), automation\n"
        f"from_zip = [p for p in compiled if p.startswith({str(bundled)!r})]\n"
        f"assert not from_zip or not {bundling.ships_bytecode()}, f'compiled at import: {{from_zip[:3]}}'\n"
        "assert sys.modules['aws_lambda_powertools'].__file__.startswith(" + repr(str(bundled)) + ")\n"
    )
    result = subprocess.run(
        # -B: /var/task is read-only, nothing is written, so only the zip's own bytecode spares the compile.
        [sys.executable, "-I", "-B", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stderr
