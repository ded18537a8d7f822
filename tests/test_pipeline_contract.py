"""dvc.yaml as a contract: each stage depends on exactly the code it runs (its script and the
package modules it imports), every path its command names is a declared dependency or output, and
the stages are the pipeline's, in order."""

import itertools
import shlex

import pytest
import yaml
from helpers import REPO

from mnist_ae.pipeline.code_deps import code_closure, expected_dvc_yaml, stage_scripts

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


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
        "promote",
        "tidy",
    ]


def test_every_stage_waits_for_the_params_check():
    """DVC deletes a stage's outputs before running it: a bad value must stop it earlier."""
    verdict = "reports/check_params/valid.json"
    assert declared(STAGES["check-params"], "outs") == {verdict}
    for name, stage in STAGES.items():
        if name != "check-params":
            assert verdict in declared(stage, "deps"), name
    assert set(STAGES["check-params"]["params"]) == set(PARAMS)  # every section


def test_code_deps_are_exactly_the_imports_and_dev_py_deps_writes_them():
    assert (REPO / "dvc.yaml").read_text() == expected_dvc_yaml(REPO), (
        "dvc.yaml's code dependencies differ from the imports: run `python3 dev.py deps`"
    )
    for name, script in stage_scripts(REPO).items():
        code = {d for d in declared(STAGES[name], "deps") if d.endswith(".py")}
        assert code == set(code_closure(script, REPO)), name


def test_the_champion_rule_is_promote_s_alone():
    """Editing the rule reruns only promote (DVC reruns a stage when a dependency changes)."""
    rule = "src/mnist_ae/tracking/champion.py"
    assert [name for name, stage in STAGES.items() if rule in declared(stage, "deps")] == [
        "promote"
    ]
    assert "src/mnist_ae/analysis/pca.py" not in declared(STAGES["evaluate"], "deps")
    assert "reports/evaluate/metrics.json" not in declared(STAGES["compare-pca"], "deps")


@pytest.mark.parametrize("name", list(STAGES))
def test_every_path_in_the_command_is_declared(name):
    stage = STAGES[name]
    outputs = declared(stage, "outs") | declared(stage, "metrics") | declared(stage, "plots")
    inputs = declared(stage, "deps")
    for flag, path in command_paths(stage).items():
        # params are listed key by key; the source record is deliberately neither a dependency
        # nor an output (see download.py); train's checkpoints live outside its outputs
        if flag in ("--params", "--record") or (name, flag) == ("train", "--checkpoints"):
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


def test_dvc_reads_its_files_with_ruamel_s_c_parser():
    """DVC loads dvc.yaml and dvc.lock with ruamel.yaml's safe loader: in pure Python unless the
    C extension (the ruamel.yaml.clib dependency) is installed, about 5 times slower per read."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None and YAML(typ="safe").Parser is CParser
    assert YAML(typ="safe").load((REPO / "dvc.lock").read_text())["stages"].keys() == STAGES.keys()
