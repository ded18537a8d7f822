"""README.md and docs/ stay true: links resolve, results equal the committed reports, the params
reference matches the schema and dvc.yaml, runnable blocks compile (test_e2e.py runs them
against a real champion), the front-page figure is the default run's, every command shown is
one its program takes, the diagrams are dvc.yaml's graph, every environment variable and port
named is real. Each check is also shown catching a broken copy."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import yaml
from docs_check import (
    PAGES,
    broken_links,
    result_mismatches,
    run_block,
    runnable_blocks,
    table_rows,
    unsourced_figures,
)
from docs_commands import (
    command_problems,
    diagram_edges,
    pipeline_edges,
    port_problems,
    variable_problems,
)
from helpers import REPO

from mnist_ae.plumbing.params import Params

README_TABLE, RESULTS_TABLE = "denoising, σ = 0.4", "test set, 10,000 digits"  # noqa: RUF001


def test_every_link_and_anchor_resolves():
    assert broken_links(PAGES) == []


def test_a_broken_link_or_anchor_is_caught(tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A heading\n")
    page.write_text(
        "# Page\n\nSee [fine](other.md#a-heading), [gone](nowhere.md), [typo](other.md#a-headin)"
        " and [here](#page).\n\n```\n[in code](ignored.md)\n```\n"
    )
    found = [line.split(": ", 1)[1] for line in broken_links([page])]
    assert found == ["nowhere.md (no such file)", "other.md#a-headin (no such heading)"]


def test_the_results_tables_equal_the_committed_reports():
    assert result_mismatches((REPO / "README.md").read_text(), README_TABLE) == []
    results = (REPO / "docs" / "results.md").read_text()
    assert result_mismatches(results, RESULTS_TABLE, page_folder="docs") == []


def test_a_figure_that_differs_from_its_report_is_caught():
    readme = (REPO / "README.md").read_text()
    assert "| **22.22 dB** |" in readme
    found = result_mismatches(readme.replace("| **22.22 dB** |", "| **22.42 dB** |"), README_TABLE)
    assert (
        len(found) == 1
        and found[0].startswith("**the default autoencoder**")
        and ("PSNR 22.42, the report says 22.216" in found[0])
    )


def test_the_article_network_figures_come_from_a_real_run():
    article = json.loads((REPO / "docs" / "results" / "article-network.json").read_text())
    assert article["params"]["model.arch"] == "seed" and article["params"]["train.epochs"] == 50
    assert article["train"]["precision"] == "fp32" and article["train"]["best_epoch"] >= 1
    assert set(article["evaluate"]) >= {"denoising", "reconstruction", "noisy_input"}


def test_the_front_page_figure_is_the_default_run_s():
    """docs/images/reconstructions.png is the file dvc.lock records for evaluate's figure."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    (recorded,) = [
        out["md5"]
        for out in lock["stages"]["evaluate"]["outs"]
        if out["path"] == "reports/evaluate/reconstructions.png"
    ]
    shown = REPO / "docs" / "images" / "reconstructions.png"
    assert hashlib.md5(shown.read_bytes()).hexdigest() == recorded


def _default(value) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_the_params_reference_lists_every_key_its_default_and_its_readers():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    expected = {}
    for section, field in Params.model_fields.items():
        default = field.default
        fields = type(default).model_fields if hasattr(type(default), "model_fields") else None
        for key, value in (
            {f"{section}.{k}": getattr(default, k) for k in fields}.items()
            if fields
            else {section: default}.items()
        ):
            readers = [
                name
                for name, stage in stages.items()
                if name != "check-params"
                and (key in stage.get("params", []) or section in stage.get("params", []))
            ]
            expected[key] = (_default(value), ", ".join(readers))
    rows = table_rows((REPO / "docs" / "pipeline.md").read_text(), "key")
    listed = {row["key"].strip("`"): (row["default"].strip("`"), row["read by"]) for row in rows}
    assert listed == expected


def test_runnable_blocks_compile_and_a_failing_one_is_caught(tmp_path):
    blocks = [block for page in PAGES for block in runnable_blocks(page.read_text())]
    assert blocks, "the docs mark at least one Python block runnable"
    for block in blocks:
        compile(block, "<docs>", "exec")
    broken = "<!-- runnable -->\n```python\nimport json\njson.loads('{')\n```\n"
    (block,) = runnable_blocks(broken)
    done = run_block(block, tmp_path)
    assert done.returncode == 1 and "JSONDecodeError" in done.stderr


def test_the_readme_fits_a_few_screens():
    assert len((REPO / "README.md").read_bytes()) <= 12_288


def test_a_results_table_checked_against_other_reports_is_caught(tmp_path):
    """The same README against reports whose default run scored otherwise."""
    for report in ("reports/evaluate", "reports/compare_pca", "docs/results"):
        shutil.copytree(REPO / report, tmp_path / report)
    metrics = tmp_path / "reports" / "evaluate" / "metrics.json"
    evaluation = json.loads(metrics.read_text())
    evaluation["denoising"]["ssim"] = 0.5
    metrics.write_text(json.dumps(evaluation))
    found = result_mismatches((REPO / "README.md").read_text(), README_TABLE, tmp_path)
    assert found == ["**the default autoencoder** (32-number code, 9 epochs): SSIM 0.936, "
                     "the report says 0.5"]  # fmt: skip


def test_every_command_the_docs_show_is_one_its_program_takes():
    assert command_problems(PAGES) == []


def test_a_misspelled_flag_a_wrong_key_or_a_missing_stage_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```bash\n"
        "python3 dev.py stack up --hots 10.0.0.5   # a misspelled flag\n"
        "dvc exp run -S train.epoch=3 -S train.lr=0.02\n"
        "dvc exp run -S train.epochs=0\n"
        "python3 dev.py repro -s evalute\n"
        "dvc exp runn && mlflow ui --prot 3\n"
        "python3 dev.py test --quik\n"
        "python3 dev.py stack user add alice --rol writer   # argparse would take it for --role\n"
        'eval "$(python3 dev.py stack env --usr alice)"\n'
        "```\n\nThen `python -m mnist_ae.sweep rn` (`python -m mnist_ae.denoise` alone is fine).\n"
    )
    found = [line.split(": ", 2)[1:] for line in command_problems([page])]
    assert [command for command, _ in found] == [
        "python3 dev.py stack up --hots 10.0.0.5",
        "dvc exp run -S train.epoch=3 -S train.lr=0.02",
        "dvc exp run -S train.epochs=0",
        "python3 dev.py repro -s evalute",
        "dvc exp runn",
        "mlflow ui --prot 3",
        "python3 dev.py test --quik",
        "python3 dev.py stack user add alice --rol writer",
        "python3 dev.py stack env --usr alice",
        "python -m mnist_ae.sweep rn",
    ]
    why = [reason for _, reason in found]
    assert "unrecognized arguments: --hots 10.0.0.5" in why[0]
    assert why[1] == "-S train.epoch=3: train.epoch: no such params key"
    assert "train.epochs: Input should be greater than or equal to 1 (got 0)" in why[2]
    assert why[3] == "dvc repro: 'evalute' is not a stage of dvc.yaml"
    assert "invalid choice: 'runn'" in why[4] and "No such option '--prot'" in why[5]
    assert why[6] == "pytest: no option --quik" and "unrecognized arguments: --rol" in why[7]
    assert "--usr" in why[8] and "invalid choice: 'rn'" in why[9]


def test_the_pipeline_diagrams_are_dvc_yaml_s_graph():
    edges = pipeline_edges()
    assert ("train", "latent") in edges and ("evaluate", "latent") not in edges
    for page in (REPO / "README.md", REPO / "docs" / "pipeline.md"):
        assert diagram_edges(page.read_text()) == edges, page.name


def test_a_diagram_with_a_wrong_arrow_is_caught():
    readme = (REPO / "README.md").read_text()
    wrong = readme.replace("train --> latent", "evaluate --> latent")
    assert diagram_edges(wrong) ^ pipeline_edges() == {("train", "latent"), ("evaluate", "latent")}


def test_the_stage_table_lists_exactly_dvc_yaml_s_stages():
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    rows = table_rows((REPO / "docs" / "pipeline.md").read_text(), "stage")
    assert [row["stage"].strip("`") for row in rows] == sorted(stages, key=[
        row["stage"].strip("`") for row in rows].index) and len(rows) == len(stages)  # fmt: skip


def test_every_environment_variable_and_port_named_is_real(tmp_path):
    assert variable_problems(PAGES) == [] and port_problems(PAGES) == []
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```bash\nexport MLFLOW_TRACKIN_URI=http://127.0.0.1:15000\n```\n\n"
        "Set `MNIST_AE_CACH_DIR`; open http://127.0.0.1:15020 or PostgreSQL 15002.\n"
    )
    assert variable_problems([page]) == [
        f"{page}: MLFLOW_TRACKIN_URI: read or set by nothing of ours",
        f"{page}: MNIST_AE_CACH_DIR: read or set by nothing of ours",
    ]
    assert port_problems([page]) == [
        f"{page}: port 15020: nothing listens there by default",
        f"{page}: PostgreSQL 15002: it is 15001",
    ]


def test_the_stack_s_help_is_for_its_users():
    from mnist_ae.stack.__main__ import parser

    shown = parser().format_help()
    assert "May import" not in shown and "python3 dev.py stack up --host ADDRESS" in shown


def test_dev_py_exps_keeps_what_tells_two_trainings_apart():
    """`dvc exp show --keep` keeps the columns its regex matches (DVC uses re.match)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dev", REPO / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    keep = re.compile(dev.HEADLINE)
    training = [f"train.{key}" for key in ("loss", "lr", "epochs", "batch_size", "schedule",
                                           "fresh_noise")]  # fmt: skip
    shown = ["precision", "noise.std", "model.arch", "model.latent_dim", *training,
             "denoising.psnr", "pca.denoising.psnr", "beats_pca", "roc_auc"]  # fmt: skip
    assert [column for column in shown if not keep.match(column)] == []
    hidden = ["train.device", "src/mnist_ae/model/loop.py", "data/processed", "best_val_loss"]
    assert [column for column in hidden if keep.match(column)] == []


def test_the_stack_times_table_is_its_json():
    measured = json.loads((REPO / "docs" / "results" / "stack-times.json").read_text())["stacks"]
    rows = table_rows((REPO / "docs" / "team-stack.md").read_text(), "stack")
    shown = {
        row["stack"].split()[0]: [row[c].removesuffix(" s") for c in ("first `up`", "later `up`",
                                                                       "`down`")]
        for row in rows
    }  # fmt: skip
    assert shown == {
        host: [str(times[key]) for key in ("first_up_s", "later_up_s", "down_s")]
        for host, times in measured.items()
    }


def test_the_time_table_is_pipeline_times_json():
    """Each row's time is the JSON's: a stage by its name (the row's first words), the
    install step, the whole run and the smoke run; a stage DVC skipped is not in the JSON."""
    measured = json.loads((REPO / "docs" / "results" / "pipeline-times.json").read_text())
    totals = {"install uv": "install and sync", "the whole": "repro_s", "the smoke": "smoke_run_s"}
    for row in table_rows((REPO / "docs" / "results.md").read_text(), "step"):
        step, shown = row["step"].strip("*"), row["time"].strip("*")
        key = next((k for start, k in totals.items() if step.startswith(start)), step.split()[0])
        value = measured.get(key, measured["stages_s"].get(key))
        if value is None:
            assert shown.startswith("skipped"), step
        else:
            assert shown == f"{value} s", step
    assert len(measured["epochs_s"]) == 9


def test_the_training_loop_table_is_its_json():
    runs = json.loads((REPO / "docs" / "results" / "train-throughput.json").read_text())["runs"]
    measured = {
        (run["options"]["arch"], run["result"]["our_precision"]): [
            f"{run['result']['naive_images_per_second']:,} img/s",
            f"{run['result']['our_images_per_second']:,} img/s",
            f"{run['result']['ratio']:.2f}\u00d7",
        ]
        for run in runs
    }
    rows = table_rows((REPO / "docs" / "performance.md").read_text(), "arch")
    shown = {
        (row["arch"].split()[0].strip("`"), row["our loop in"]): [
            row["naive DataLoader loop"],
            row["our loop"],
            row["ratio"],
        ]
        for row in rows
    }
    assert shown == measured


def test_the_serving_figures_are_their_json():
    measured = json.loads((REPO / "docs" / "results" / "serving.json").read_text())["batches"]
    text = " ".join((REPO / "docs" / "tracking.md").read_text().split())
    ours = [row for row in measured if row.get("server", "ours") == "ours"]
    one, many = (next(row for row in ours if row["batch"] == size) for size in (1, 256))
    mlflow_256 = next(r for r in measured if r.get("server") == "mlflow" and r["batch"] == 256)
    assert f"({mlflow_256['images_per_s']} digits/s at 256)" in text
    assert (f"a batch of 1 took a median {one['median_ms']} ms (95th percentile {one['p95_ms']} "
            f"ms), {one['requests_per_s']} requests/s") in text  # fmt: skip
    assert (f"a batch of 256 a median {many['median_ms']} ms (95th percentile {many['p95_ms']} "
            f"ms), {many['images_per_s']} digits/s") in text  # fmt: skip


def test_the_not_a_digit_shares_are_anomaly_s_report():
    shares = json.loads((REPO / "reports" / "anomaly" / "metrics.json").read_text())["not_a_digit"]
    rows = table_rows((REPO / "docs" / "results.md").read_text(), "pictures")
    order = ["mnist_clean", "mnist_noisy", "fashion_clean", "fashion_noisy", "letters_clean",
             "letters_noisy", "uniform_noise", "noise_alone"]  # fmt: skip
    assert [row["judged not a digit"] for row in rows] == [f"{shares[k]:.2%}" for k in order]


def test_the_verdict_s_serving_cost_is_its_json():
    measured = json.loads((REPO / "docs" / "results" / "serving-verdict.json").read_text())
    rows = {(row["server"], row["batch"]): row for row in measured["batches"]}
    text = " ".join((REPO / "docs" / "tracking.md").read_text().split())
    before, after = rows["before", 256]["images_per_s"], rows["after", 256]["images_per_s"]
    assert f"before {before} digits/s, after {after} digits/s" in text
    assert after >= 0.9 * before  # the bound, on the committed measurement
    one = f"before {rows['before', 1]['requests_per_s']} requests/s, after "
    assert one + f"{rows['after', 1]['requests_per_s']}" in text


def test_the_disk_figures_are_their_json():
    measured = json.loads((REPO / "docs" / "results" / "disk-use.json").read_text())
    for page in (REPO / "README.md", REPO / "docs" / "troubleshooting.md"):
        text = " ".join(page.read_text().split())
        assert f"{measured['venv_mb']:,} MB" in text, page.name
        assert f"{measured['data_models_and_dvc_cache_mb']} MB" in text, page.name


def test_the_suite_times_are_their_json():
    measured = json.loads((REPO / "docs" / "results" / "suite-times.json").read_text())
    page = (REPO / "docs" / "testing.md").read_text()
    text = " ".join(page.split())
    for tier, name in (("quick", "the quick tier"), ("full", "the full suite")):
        found = measured[tier]
        assert f"{name}, {found['tests']} tests, in {found['wall_s']} s" in text
    rows = table_rows(page, "file")
    assert {row["file"]: row["time"] for row in rows} == {
        name: f"{measured['full']['files_s'][name]} s" for name in (row["file"] for row in rows)
    }


def test_every_measured_figure_links_the_report_or_json_it_comes_from(tmp_path):
    assert unsourced_figures(PAGES) == []
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\nA save took 36 ms against epochs of 48 s.\n\n"
        "A perfect image scores 80 dB; an example request: [x](examples/noisy-digit.json), "
        "1.9\u00d7 faster.\n\n"
        "Serving answered in 7.9 ms ([serving.json](results/serving.json)), 28 \u00d7 28 digits.\n"
    )
    found = unsourced_figures([page])
    assert [line.split(" (")[0] for line in found] == [
        f"{page}: 36 ms, 48 s",
        f"{page}: 80 dB, 1.9\u00d7",
    ]
