"""The layers hold: what ships in the functions' zip never imports operator or local code, and the
decisions import no AWS.

Read from the sources (every ``import``, also inside functions), not from what one run happens to load:
an import that only runs on a rare path is still an import the zip must satisfy. The zip's module set
is the one infra/bundling.py ships (its ``EXCLUDED_SUBPACKAGES``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = REPO / "lambdas"
PACKAGE_DIR = LAMBDAS_DIR / "stagepilot"
# What the zip must never import: the fakes (a dev dependency), the stand-in, the CLI and the operator's tools.
NOT_IN_THE_ZIP = ("moto", "stagepilot.local", "stagepilot.cli", "stagepilot.operator")
# What the decisions must never import: they are plain functions over plain data.
NOT_IN_DECISIONS = ("stagepilot.adapters", "boto3", "botocore", *NOT_IN_THE_ZIP)
# The layers below the orchestration (decisions, policy, adapters) never import what orchestrates them.
LOWER_LAYERS = ("decisions", "policy", "adapters")
ORCHESTRATION = (
    "stagepilot.pipeline",
    "stagepilot.convergence",
    "stagepilot.automations",
    "stagepilot.handlers",
    "stagepilot.door",
)


def excluded_subpackages() -> tuple[str, ...]:
    """``EXCLUDED_SUBPACKAGES`` of infra/bundling.py, read from its source (importing it boots the CDK)."""
    tree = ast.parse((REPO / "infra" / "bundling.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["EXCLUDED_SUBPACKAGES"]:
            value: tuple[str, ...] = ast.literal_eval(node.value)
            return value
    raise AssertionError("infra/bundling.py no longer defines EXCLUDED_SUBPACKAGES")


def module_name(path: Path, lambdas_dir: Path = LAMBDAS_DIR) -> str:
    parts = path.relative_to(lambdas_dir).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, lambdas_dir: Path = LAMBDAS_DIR) -> set[str]:
    """Every module ``path`` imports (and every name it imports from one), absolute, wherever the import is."""
    name = module_name(path, lambdas_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def zip_modules() -> list[Path]:
    """The package's modules as the bundler ships them (its subpackage exclusions applied)."""
    excluded = {PACKAGE_DIR / sub for sub in excluded_subpackages()}
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if not any(p.is_relative_to(e) for e in excluded))


def forbidden(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def violations(paths: list[Path], prefixes: tuple[str, ...]) -> list[str]:
    return [f"{module_name(p)} imports {name}" for p in paths for name in forbidden(imported(p), prefixes)]


def test_the_zip_imports_no_operator_local_or_cli_code_and_no_moto() -> None:
    modules = zip_modules()
    assert {"stagepilot.handlers.composition", "stagepilot.pipeline"} <= {module_name(p) for p in modules}
    assert violations(modules, NOT_IN_THE_ZIP) == []


def test_the_decisions_import_no_adapters_and_no_aws() -> None:
    modules = sorted((PACKAGE_DIR / "decisions").rglob("*.py"))
    assert len(modules) >= 5
    assert violations(modules, NOT_IN_DECISIONS) == []


def test_decisions_policy_and_adapters_import_nothing_that_orchestrates_them() -> None:
    modules = sorted(p for layer in LOWER_LAYERS for p in (PACKAGE_DIR / layer).rglob("*.py"))
    assert len(modules) >= 20
    assert violations(modules, (*ORCHESTRATION, *NOT_IN_THE_ZIP)) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("def f():\n    from moto import mock_aws\n", ["moto", "moto.mock_aws"]),
        ("import moto.dynamodb\n", ["moto.dynamodb"]),
        ("from ..local import deployment\n", ["stagepilot.local", "stagepilot.local.deployment"]),
        ("from ..cli import main\n", ["stagepilot.cli", "stagepilot.cli.main"]),
        ("from .. import operator\n", ["stagepilot.operator"]),
        ("import motorway\nfrom stagepilot.localized import x\n", []),
    ],
)
def test_an_added_forbidden_import_is_caught(tmp_path: Path, source: str, found: list[str]) -> None:
    module = tmp_path / "stagepilot" / "adapters" / "added.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    assert forbidden(imported(module, tmp_path), NOT_IN_THE_ZIP) == found
