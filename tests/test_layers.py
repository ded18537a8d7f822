"""The package's folders are its architecture: each subpackage says in its `__init__` what it owns
and which others it may import, its modules import nothing else, and the imports run one way.
The `__init__` files hold only their docstring, so importing a subpackage runs nothing."""

import ast
import graphlib
import re

import pytest
from helpers import REPO

from mnist_ae.pipeline.code_deps import imported_modules

PACKAGE = REPO / "src" / "mnist_ae"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def allowed_imports(subpackage: str) -> set[str]:
    """What its `__init__` docstring says it may import: 'May import: a, b.' or 'nothing'."""
    doc = ast.get_docstring(ast.parse((PACKAGE / subpackage / "__init__.py").read_text()))
    found = re.search(r"^May import: (.+)\.$", doc or "", re.MULTILINE)
    assert found, f"{subpackage}/__init__.py does not say what it may import"
    listed = found.group(1)
    return set() if listed.startswith("nothing") else {p.strip() for p in listed.split(",")}


def test_the_subpackages_are_the_concerns_of_the_design():
    assert SUBPACKAGES == [
        "analysis",
        "data",
        "model",
        "pipeline",
        "plumbing",
        "stack",
        "tracking",
    ]


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=str)
def test_an_init_holds_only_its_docstring(init):
    body = ast.parse(init.read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{init}: code beside the docstring"
    assert isinstance(body[0].value, ast.Constant) and body[0].value.value.strip()


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_a_subpackage_imports_only_what_its_init_allows(subpackage):
    allowed = allowed_imports(subpackage) | {subpackage}
    for module in sorted((PACKAGE / subpackage).glob("*.py")):
        for imported in imported_modules(module, REPO):
            parts = imported.split(".")
            assert len(parts) > 2 and parts[1] in allowed, (
                f"{module.relative_to(REPO)} imports {imported}; {subpackage} may import "
                f"only {sorted(allowed)}"
            )


def test_the_imports_run_one_way():
    graph = {name: allowed_imports(name) for name in SUBPACKAGES}
    assert set().union(*graph.values()) <= set(SUBPACKAGES)
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a loop
    assert graph["plumbing"] == set()  # the ground floor


def test_nothing_in_the_package_imports_the_stage_scripts():
    for module in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "stages" for n in names), module


def test_only_the_tracking_package_talks_to_mlflow():
    """Every run, metric, artifact and version goes through tracking/: the stages, the pipeline,
    serve, denoise and the sweep import nothing of MLflow (the stack runs its server as a
    program, and asks tracking/ for the rest)."""
    modules = [*PACKAGE.rglob("*.py"), *(REPO / "stages").glob("*.py")]
    for module in sorted(m for m in modules if m.parent.name != "tracking"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found = [n for n in names if n.split(".")[0] == "mlflow"]
            assert not found, (
                f"{module.relative_to(REPO)} imports {found[0]}: use mnist_ae.tracking"
            )
