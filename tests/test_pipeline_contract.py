"""dvc.yaml as a contract: each stage depends on exactly the code it imports, and every path its
command names is a declared dependency or output."""

import ast
import itertools
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def package_imports(path: Path) -> set[str]:
    """The mnist_ae modules a file imports, wherever in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnist_ae"):
            if node.module == "mnist_ae":
                found |= {f"mnist_ae.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mnist_ae")}
    return found


def code_closure(script: Path, repo: Path = REPO) -> set[str]:
    """The script and every package module it imports, directly or not, as repo paths."""
    seen: set[str] = set()
    todo = list(package_imports(script))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(package_imports(repo / "src" / (module.replace(".", "/") + ".py")))
    return {str(script.relative_to(repo))} | {f"src/{m.replace('.', '/')}.py" for m in seen}


def declared(stage: dict, kind: str) -> set[str]:
    entries = stage.get(kind, [])
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries}


def command_paths(stage: dict) -> dict[str, str]:
    tokens = shlex.split(stage["cmd"])
    return {flag: value for flag, value in itertools.pairwise(tokens) if flag.startswith("--")}


def test_the_pipeline_has_its_stages_in_order():
    assert list(STAGES) == [
        "check-params",
        "download",
        "preprocess",
        "add-noise",
        "train",
        "evaluate",
        "latent",
        "download-fashion",
        "anomaly",
        "compare-pca",
    ]


def test_every_stage_waits_for_the_params_check():
    """DVC deletes a stage's outputs before running it: a bad value must stop it earlier."""
    verdict = "reports/check_params/valid.json"
    assert declared(STAGES["check-params"], "outs") == {verdict}
    for name, stage in STAGES.items():
        if name != "check-params":
            assert verdict in declared(stage, "deps"), name
    assert set(STAGES["check-params"]["params"]) == set(PARAMS)  # every section


@pytest.mark.parametrize("name", list(STAGES))
def test_code_deps_are_exactly_the_imports(name):
    stage = STAGES[name]
    script = REPO / shlex.split(stage["cmd"])[1]
    code_deps = {d for d in declared(stage, "deps") if d.endswith(".py")}
    assert code_deps == code_closure(script)


@pytest.mark.parametrize("name", list(STAGES))
def test_every_path_in_the_command_is_declared(name):
    stage = STAGES[name]
    outputs = declared(stage, "outs") | declared(stage, "metrics") | declared(stage, "plots")
    inputs = declared(stage, "deps")
    for flag, path in command_paths(stage).items():
        # params are listed key by key; the source record and the checkpoints are deliberately
        # neither dependencies nor outputs (see download.py and dvc.yaml's train stage)
        if flag in ("--params", "--record", "--checkpoints"):
            continue
        covered = path in inputs | outputs or any(
            o.startswith(path.rstrip("/") + "/") for o in outputs
        )
        assert covered, f"{name}: {flag} {path} is neither a dependency nor an output"


@pytest.mark.parametrize("name", list(STAGES))
def test_params_keys_exist(name):
    for key in STAGES[name].get("params", []):
        node = PARAMS
        for part in key.split("."):
            assert part in node, f"{name}: params key {key} is not in params.yaml"
            node = node[part]


def test_metrics_and_plot_data_are_committed_and_images_are_cached():
    for stage in STAGES.values():
        for kind in ("metrics", "plots"):
            for entry in stage.get(kind, []):
                path, options = (
                    next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                )
                in_git = options.get("cache", True) is False
                assert in_git == (not path.endswith(".png")), path
