"""Every command README.md and docs/ show, checked against the programs that would run it: each
`python3 dev.py ...` and `python -m mnist_ae...` line parses with that command's own argument
parser, each `dvc` and `mlflow` line with DVC's and MLflow's, each `-S key=value` names a params
key and a valid value, each stage named is in dvc.yaml, each environment variable named is one
that the code (ours, or the library named for it) reads or sets, and each port is the one that
program listens on. Each check returns what is wrong (empty: all true)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import yaml
from docs_check import _FENCE
from helpers import REPO

from mnist_ae.plumbing.params import ParamsError, parse_params
from mnist_ae.stack.layout import DEFAULT_PORT_BASE, PORT_OFFSETS

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
# Inline code that is a command of one of these programs is checked like a shell block's.
PROGRAMS = ("python3 dev.py", "python -m mnist_ae", "python benchmarks/", "dvc ", "mlflow ")
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
ELIDED = "..."  # "the rest as you like": arguments after it are not checked
VARIABLE = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
# Names in the docs' code that look like environment variables but are not.
NOT_VARIABLES = {"PG_VERSION"}  # PostgreSQL's version file in a cluster
# Commands the docs show being refused, to say what the refusal looks like.
REFUSED_ON_PURPOSE = {
    "dvc exp run -S trian.epochs=3",  # an unknown key: named, not added
    "dvc exp run -S train.epochs=-3",  # out of range: refused before DVC deletes outputs
}
# Variables read by a library rather than by our code: the module (or a file in its package)
# that reads each, and the text in it that does.
LIBRARY_VARIABLES = {
    "DO_NOT_TRACK": ("mlflow:telemetry/utils.py", "DO_NOT_TRACK"),
    # urllib (and so pip and MLflow's client) reads every <scheme>_proxy, in either case
    "HTTPS_PROXY": ("urllib.request", "_proxy"),
    "HTTP_PROXY": ("urllib.request", "_proxy"),
    "NO_PROXY": ("urllib.request", "no_proxy"),
    "PIP_CACHE_DIR": ("pip:_internal/configuration.py", '"PIP_"'),  # any PIP_<option>
    "TORCHINDUCTOR_CACHE_DIR": (
        "torch:_inductor/runtime/cache_dir_utils.py",
        "TORCHINDUCTOR_CACHE",
    ),
    "ATEN_CPU_CAPABILITY": ("torch:_inductor/cpu_vec_isa.py", "ATEN_CPU_CAPABILITY"),
    # oneDNN, inside torch's C++ library, reads ONEDNN_ (or DNNL_) + MAX_CPU_ISA
    "ONEDNN_MAX_CPU_ISA": ("torch:lib/libtorch_cpu.so", "MAX_CPU_ISA"),
}


class Wrong(Exception):
    """A command the docs show that its program would refuse: the message says why."""


# -- finding the commands -------------------------------------------------------------------
def shown_commands(markdown: str) -> list[str]:
    """Shell blocks' text, and inline code that runs one of PROGRAMS."""
    found = SHELL_BLOCK.findall(markdown)
    prose = _FENCE.sub("", markdown)
    found += [span for span in INLINE.findall(prose) if span.startswith(PROGRAMS)]
    return found


def split_commands(text: str) -> list[list[str]]:
    """Each simple command in shell text, as its words: lines joined at a trailing backslash,
    comments dropped, split at &&, ||, ;, | and each $(...) a command of its own."""
    commands = []
    text = re.sub(r"<[A-Za-z][\w .-]*>", "<value>", text)  # `<your S3 endpoint>`: one word
    for line in text.replace("\\\n", " ").splitlines():
        inner = re.findall(r"\$\(([^()]*)\)", line)
        for part in [*inner, re.sub(r"\$\([^()]*\)", "x", line)]:
            lexer = shlex.shlex(part, posix=True, punctuation_chars=";&|()")
            lexer.whitespace_split, lexer.commenters = True, "#"
            words: list[str] = []
            for word in [*lexer, ";"]:
                if word in OPERATORS:
                    if words:
                        commands.append(words)
                    words = []
                else:
                    words.append(word)
    return commands


def _without_placeholders(args: list[str]) -> list[str]:
    """`<name>` stands for a value; `...` for arguments left to the reader."""
    kept = []
    for arg in args:
        if arg == ELIDED:
            break
        kept.append("1" if re.fullmatch(r"<[^>]*>|\S*\.\.\.\S*", arg) else arg.strip("[]"))
    return kept


# -- the programs' own parsers ----------------------------------------------------------------
# What a parser says of a command that only lacks what the reader supplies: prose names a
# command ("`python -m mnist_ae.denoise` refuses ...") without all its arguments.
INCOMPLETE = ("the following arguments are required", "expected one argument")


@contextlib.contextmanager
def _parse_errors(program: str) -> Iterator[None]:
    """An argparse refusal (it prints and exits) as a Wrong with the parser's own words."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
            yield
    except Wrong:
        raise
    except (SystemExit, Exception) as error:
        if isinstance(error, SystemExit) and not error.code:
            return  # --help
        said = [line for line in printed.getvalue().splitlines() if "error" in line.lower()]
        raise Wrong(said[-1] if said else f"{program}: {error}") from None


def _strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No abbreviated options: the docs spell each flag as it is (argparse would take `--rol`
    for `--role`, and `--rol` for something else once another option starts so)."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _strict(sub)
    return parser


def check_dvc(args: list[str]) -> None:
    from dvc.cli.parser import DvcParser, get_main_parser

    def refuse(_: DvcParser, message: str) -> None:
        raise Wrong(f"dvc: {message}")

    original, DvcParser.error = DvcParser.error, refuse  # DVC would log it and raise
    try:
        with _parse_errors("dvc"):
            parsed = _strict(get_main_parser()).parse_args(args)
    finally:
        DvcParser.error = original
    if getattr(parsed, "cmd", None) in ("run", "repro"):
        stages = _stages()
        for target in getattr(parsed, "targets", None) or []:
            if target.removeprefix("dvc.yaml:") not in stages:
                raise Wrong(f"dvc {args[0]}: {target!r} is not a stage of dvc.yaml")
    for setting in getattr(parsed, "set_param", None) or []:
        check_setting(setting)


def check_setting(setting: str) -> None:
    """`-S key=value`: the key exists in params.yaml's schema and the value passes it."""
    key, equals, value = setting.partition("=")
    if not equals:
        raise Wrong(f"-S {setting}: not key=value")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    section = raw
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(section.get(part), dict):
            raise Wrong(f"-S {setting}: {key}: no such params key")
        section = section[part]
    if last not in section:
        raise Wrong(f"-S {setting}: {key}: no such params key")
    section[last] = yaml.safe_load(value)  # DVC reads -S values as YAML too
    try:
        parse_params(raw, f"-S {setting}")
    except ParamsError as error:
        raise Wrong(" ".join(str(error).split())) from None


def check_mlflow(args: list[str]) -> None:
    import click
    from mlflow.cli import cli

    command, words, names = cli, list(args), ["mlflow"]
    try:
        while isinstance(command, click.Group):
            context = command.make_context(" ".join(names), words)
            rest = [*getattr(context, "_protected_args", []), *context.args]
            name, command, words = command.resolve_command(context, rest)
            names.append(name)
        command.make_context(" ".join(names), words)
    except click.MissingParameter:
        return  # the docs may leave out what the reader supplies
    except click.UsageError as error:
        raise Wrong(f"{' '.join(names)}: {error.format_message()}") from None


@cache
def _pytest_options() -> frozenset[str]:
    shown = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], cwd=REPO, capture_output=True, text=True
    ).stdout
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", shown))


def check_pytest(args: list[str]) -> None:
    for arg in args:
        option = arg.partition("=")[0]
        if option.startswith("-") and option != "--quick" and option not in _pytest_options():
            raise Wrong(f"pytest: no option {option}")


@cache
def _dev_commands() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("dev", REPO / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return dev.COMMANDS


def check_dev(args: list[str]) -> None:
    """`python3 dev.py NAME ...`: NAME one of its commands, the rest what that command takes."""
    if not args or args[0] not in _dev_commands():
        raise Wrong(f"dev.py: no command {args[:1]} (it has {', '.join(_dev_commands())})")
    name, rest = args[0], args[1:]
    program, *fixed = _dev_commands()[name]
    if program == "dvc":
        check_dvc([*fixed, *rest])
    elif program == "mlflow":
        check_mlflow([*fixed, *rest])
    elif program == "pytest":
        check_pytest(rest)
    else:
        check_python(fixed, rest)


def check_python(target: list[str], args: list[str]) -> None:
    """`python -m mnist_ae.X ...` with the module's `parser()`; `python script.py ...` with the
    parser its `main` builds."""
    if target[0] == "-m":
        name = target[1] if target[1] != "mnist_ae.stack" else "mnist_ae.stack.__main__"
        if not name.startswith("mnist_ae"):
            return
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise Wrong(f"python -m {target[1]}: no such module") from None
        if not hasattr(module, "parser"):
            if args:
                raise Wrong(f"python -m {target[1]}: takes no arguments")
            return
        with _parse_errors(f"python -m {target[1]}"):
            _strict(module.parser()).parse_args(args)
        return
    script = REPO / target[0]
    if not script.is_file():
        raise Wrong(f"python {target[0]}: no such file")
    with _parse_errors(f"python {target[0]}"):
        _strict(_script_parser(script)).parse_args(args)


class _Captured(BaseException):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def _script_parser(script: Path) -> argparse.ArgumentParser:
    """The parser a script's `main()` builds, caught as it is about to parse."""

    def capture(parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        raise _Captured(parser)

    sys.path.insert(0, str(script.parent))  # as `python script.py` does: its siblings import
    try:
        namespace = runpy.run_path(str(script), run_name="docs-check")
    finally:
        sys.path.remove(str(script.parent))
    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        namespace["main"]()
    except _Captured as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    raise Wrong(f"{script.name}: its main() parses no arguments")


PYTHONS = ("python", "python3")


def check_command(words: list[str]) -> None:
    """One command as a shell would run it; programs other than ours, DVC's and MLflow's are
    not checked."""
    words = [w for w in words if not re.fullmatch(rf"{VARIABLE}=\S*", w)]  # VAR=x command
    words = _without_placeholders(words)
    if not words:
        return
    program, args = words[0].rsplit("/", 1)[-1], words[1:]
    if program == "uv" and args[:1] == ["run"]:
        check_command(args[1:])
    elif program in PYTHONS and args[:1] == ["dev.py"]:
        check_dev(args[1:])
    elif program in PYTHONS and args[:1] == ["-m"] and len(args) > 1:
        check_python(args[:2], args[2:])
    elif program in PYTHONS and args and args[0].endswith(".py"):
        check_python(args[:1], args[1:])
    elif program == "dvc":
        check_dvc(args)
    elif program == "mlflow":
        check_mlflow(args)


def command_problems(pages: list[Path]) -> list[str]:
    """Each shown command that its program would refuse: page, command, why. A shell block's
    commands must be whole; inline code may leave out required arguments; the commands the
    docs show failing on purpose (REFUSED_ON_PURPOSE) must fail."""
    wrong = []
    for page in pages:
        markdown = page.read_text()
        blocks = SHELL_BLOCK.findall(markdown)
        for text in shown_commands(markdown):
            for words in split_commands(text):
                shown = shlex.join(words)
                try:
                    check_command(words)
                except Wrong as why:
                    incomplete = any(part in str(why) for part in INCOMPLETE)
                    if shown not in REFUSED_ON_PURPOSE and (text in blocks or not incomplete):
                        wrong.append(f"{_shown(page)}: {shown}: {why}")
                else:
                    if shown in REFUSED_ON_PURPOSE:
                        wrong.append(f"{_shown(page)}: {shown}: accepted, but shown refused")
    return wrong


def _shown(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else str(page)


# -- stages, variables, ports -----------------------------------------------------------------
@cache
def _stages() -> frozenset[str]:
    return frozenset(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def diagram_edges(markdown: str) -> set[tuple[str, str]]:
    """The edges of the page's mermaid diagram (one `a --> b` a line), by the nodes' labels,
    without check-params's (every stage follows it)."""
    (block,) = re.findall(r"^```mermaid\n(.*?)^```", markdown, re.M | re.S)
    labels = dict(re.findall(r'(\w+)\["([^"]+)"\]', block))
    node = r'(\w+)(?:\["[^"]*"\])?'
    edges = re.findall(rf"^\s*{node}\s*-->\s*{node}\s*$", block, re.M)
    named = {(labels.get(a, a), labels.get(b, b)) for a, b in edges}
    return {(a, b) for a, b in named if a != "check-params"}


def pipeline_edges() -> set[tuple[str, str]]:
    """dvc.yaml's stage graph without the edges that follow from others (and check-params,
    which every stage follows)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        graph = repo.index.graph
        names = {stage: stage.addressing.split(":")[-1] for stage in graph.nodes}
        after = {(names[b], names[a]) for a, b in graph.edges}  # networkx: a depends on b
    after = {(a, b) for a, b in after if a != "check-params"}
    reachable = {a: {b for x, b in after if x == a} for a in {x for x, _ in after}}

    def reaches(a: str, b: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(c == b or (c not in seen and reaches(c, b, seen | {c}))
                   for c in reachable.get(a, ()))  # fmt: skip

    return {(a, b) for a, b in after if not any(reaches(c, b) for c in reachable[a] - {b})}


def variables_named(markdown: str) -> set[str]:
    """Environment variables the page's shell and inline code name: assigned, exported or
    expanded in a shell block, or alone (or assigned) in inline code."""
    found: set[str] = set()
    for block in SHELL_BLOCK.findall(markdown):
        found |= set(re.findall(rf"(?:^|\s|export\s+)({VARIABLE})=", block, re.M))
        found |= set(re.findall(rf"\$\{{?({VARIABLE})", block))
    for span in INLINE.findall(_FENCE.sub("", markdown)):
        found |= set(re.findall(rf"^\$?({VARIABLE})(?:=\S*)?$", span))
        found |= set(re.findall(rf"^({VARIABLE})=\S+ ", span))
    return found - NOT_VARIABLES


@cache
def _our_code() -> str:
    files = [*REPO.glob("src/**/*.py"), *REPO.glob("stages/*.py"), *REPO.glob("tests/**/*.py"),
             *REPO.glob("benchmarks/*.py"), REPO / "dev.py", REPO / ".ci" / "run"]  # fmt: skip
    docs_tests = {"test_docs.py", "docs_check.py", "docs_commands.py"}  # they name bad ones
    return "\n".join(path.read_text() for path in files if path.name not in docs_tests)


def variable_problems(pages: list[Path]) -> list[str]:
    """Each variable named that neither our code nor its library reads or sets."""
    wrong = []
    for page in pages:
        for name in sorted(variables_named(page.read_text())):
            if re.search(rf"\b{name}\b", _our_code()):
                continue
            where, text = LIBRARY_VARIABLES.get(name, ("", ""))
            reader = _library_file(where) if where else None
            if not (reader and reader.is_file() and text.encode() in reader.read_bytes()):
                wrong.append(f"{_shown(page)}: {name}: read or set by nothing of ours")
    return wrong


def _library_file(where: str) -> Path:
    """`package.module`, or `package:file` for a file in the package's folder."""
    module, _, inside = where.partition(":")
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        return Path("/nonexistent")
    return Path(found.origin).parent / inside if inside else Path(found.origin)


def known_ports() -> dict[str, int]:
    """What listens where by default: the stack's block of ports, `dev.py ui`, `serve`."""
    from mlflow.cli import cli

    from mnist_ae import serve
    from mnist_ae.stack.clients import UNSET_ENDPOINT

    ports = {name: DEFAULT_PORT_BASE + offset for name, offset in PORT_OFFSETS.items()}
    import click

    ui = cli.get_command(click.Context(cli), "ui")
    ui_port = next(p.default for p in ui.params if p.name == "port")
    # the committed DVC remote's endpoint: a port where nothing listens, on purpose
    nowhere = urlparse(UNSET_ENDPOINT).port
    return ports | {
        "dev.py ui": int(ui_port),
        "serve": serve.parser().get_default("port"),
        "no DVC remote yet": nowhere,
    }


def port_problems(pages: list[Path]) -> list[str]:
    """Each port in an address (host:port) that nothing of the project listens on by default
    (nor a --port the page gives), and each stack port named wrongly ("PostgreSQL 15001")."""
    ports, wrong = known_ports(), []
    names = {"MLflow": "mlflow", "PostgreSQL": "postgres", "S3": "s3"}
    for page in pages:
        text = page.read_text()
        given = {int(p) for p in re.findall(r"--port(?:-base)? (\d+)", text)}
        for port in re.findall(r"(?:127\.0\.0\.1|localhost|10\.0\.0\.5):(\d+)", text):
            if int(port) not in {*ports.values(), *given}:
                wrong.append(f"{_shown(page)}: port {port}: nothing listens there by default")
        for name, port in re.findall(r"\b(MLflow|PostgreSQL|S3) (1\d{4})\b", text):
            if ports[names[name]] != int(port):
                wrong.append(f"{_shown(page)}: {name} {port}: it is {ports[names[name]]}")
    return wrong
