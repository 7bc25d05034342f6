"""The ``kinesim`` command line: ``kinesim run`` and ``kinesim validate``.

Bad input (an invalid scenario, a missing or unreadable file, bad YAML, a malformed ``--set``, a
usage error) exits with status 2 and exactly one line on stderr, ``error: <file>: <yaml path>:
<message>``, never a traceback. Ctrl-C exits with 130 and leaves no half-written results (the
results folder is written to a temporary folder and moved into place when complete).
Set ``KINESIM_DEBUG=1`` to see the traceback of an unexpected internal error.
"""
from __future__ import annotations

import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from kinesim.errors import ScenarioError
from kinesim.interrupts import DROPPED_INTERRUPT, from_interrupt, note_dropped_interrupts
from kinesim.results_io import output_problem
from kinesim.summary_format import fmt_seconds, summary_tables  # noqa: F401  (re-exported)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="kinesim",
    help="Simulate sensor fleets feeding AWS Kinesis Data Streams.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from kinesim import __version__

        print(f"kinesim {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Simulate sensor fleets feeding AWS Kinesis Data Streams."""


class CliError(Exception):
    """A user-facing failure: printed as one ``error: ...`` line, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.message = message
        self.code = code


# ------------------------------------------------------------------ helpers
def _one_line(text: str) -> str:
    """Collapse a message to one line (the contract: one line per error)."""
    return " ".join(str(text).split())


def _error(message: str) -> None:
    """Print one ``error: ...`` line on stderr (plain print: no rich wrapping or markup)."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """Parse ``--set path=value`` items into ``{path: value}`` (later items win).

    Raises :class:`CliError` for an item without ``=`` or with an empty path.
    """
    out: dict[str, str] = {}
    for item in items or []:
        path, sep, value = item.partition("=")
        path = path.strip()
        if not sep:
            raise CliError(f"--set {item}: expected PATH=VALUE, e.g. --set stream.shards=4")
        if not path:
            raise CliError(f"--set {item}: the path before '=' is empty; write it like stream.shards=4")
        out[path] = value.strip()
    return out


def with_seed(overrides: dict[str, str], seed: int | None) -> dict[str, str]:
    """``overrides`` plus ``seed`` (``--seed``, which wins over a ``--set seed=...``) when given."""
    return overrides if seed is None else {**overrides, "seed": str(seed)}


def check_command(scenario: Path, sets: dict[str, str], seed: int | None) -> str:
    """The ``kinesim check`` command line that re-runs ``scenario`` with the same ``--set`` and
    ``--seed`` options as this run, quoted for a POSIX shell."""
    words = ["kinesim", "check", str(scenario)]
    for path, value in sets.items():
        words += ["--set", f"{path}={value}"]
    if seed is not None:
        words += ["--seed", str(seed)]
    return shlex.join(words)


def load(path: Path, overrides: dict[str, str]):
    """Load and validate the scenario at ``path`` with ``overrides``; every failure is a
    :class:`CliError` whose message starts with the file name."""
    from kinesim.errors import ScenarioError
    from kinesim.loader import load_scenario

    shown = str(path)
    if not path.exists():
        raise CliError(f"{shown}: no such scenario file")
    if path.is_dir():
        raise CliError(f"{shown}: is a directory, not a scenario file")
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        text = _one_line(str(exc))
        raise CliError(text if text.startswith(shown) else f"{shown}: {text}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{shown}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except OSError as exc:
        raise CliError(f"{shown}: cannot read: {exc.strerror or exc}") from None


def _check_out(out: Path, scenario_path: Path) -> Path:
    """Refuse output folders whose replacement would destroy something that is not an earlier
    kinesim result: a file, a folder with other content, the working folder or one of its
    parents, or the folder holding the scenario."""
    target = out.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise CliError(f"--out {out}: is the working folder or one of its parents; results replace the whole folder, "
                       "choose a new one such as results/<name>")
    if target in scenario_path.resolve().parents:
        raise CliError(f"--out {out}: holds the scenario file {scenario_path}; results replace the whole folder")
    problem = output_problem(target)
    if problem:
        raise CliError(f"--out {out}: {problem}")
    return target


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[simulated]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )


# ------------------------------------------------------------------ commands
ScenarioArg = Annotated[Path, typer.Argument(metavar="SCENARIO.yaml", help="Scenario file (YAML).",
                                             show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="PATH=VALUE", show_default=False,
    help="Override a scenario value before validation, e.g. --set stream.shards=4 or "
         "--set fleets[0].rate=2/s (repeatable).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (overrides the scenario's seed).",
                                                show_default=False)]


@app.command()
def run(
    scenario: ScenarioArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                                help="Results folder (default: results/<scenario name>/); replaced if it "
                                                     "holds earlier results.")] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not write plots/*.png.")] = False,
    html_report: Annotated[bool, typer.Option("--report", help="Also write report.html: description, summary, "
                                                               "cost, expect results and plots in one "
                                                               "self-contained page.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table; "
                                                              "print only where the results went.")] = False,
) -> None:
    """Simulate a scenario, print a summary and write the results.

    Writes summary.json, a Parquet file per trace, scenario.yaml and plots/*.png (and with
    --report, report.html) into DIR.
    """
    sets = parse_sets(set_)
    overrides = with_seed(sets, seed)
    sc = load(scenario, overrides)
    target = _check_out(out if out is not None else Path("results") / sc.name, scenario)

    import kinesim

    show = not quiet and sys.stderr.isatty()
    results = None
    try:
        with _progress(show) as progress:
            task = progress.add_task(f"simulating {sc.name}", total=float(sc.duration),
                                     simulated=f"0 s / {fmt_seconds(sc.duration)}")

            def report(done: float, total: float) -> None:
                progress.update(task, completed=done, simulated=f"{fmt_seconds(done)} / {fmt_seconds(total)}")

            try:
                results = kinesim.simulate(sc, progress=report)
            except kinesim.ScenarioError as exc:  # found while running (e.g. firehose.s3.root cannot be opened)
                raise CliError(f"{scenario}: {_one_line(str(exc))}") from None
            if DROPPED_INTERRUPT:
                raise KeyboardInterrupt
            progress.update(task, description="writing results", completed=float(sc.duration))
            try:
                written = results.save(target, plots=not no_plots, report=html_report)
            except OSError as exc:
                raise CliError(f"cannot write results to {out or target}: {exc.strerror or exc}") from None
        _print_run(results, written, _display_path(written), scenario, sets, seed, quiet, no_plots, html_report)
    except KeyboardInterrupt:
        saved = getattr(results, "saved_to", None)  # set once the results folder is complete
        if saved is None:
            raise
        raise CliError(f"interrupted; the results were written to {_display_path(saved)}/", EXIT_INTERRUPTED) from None


def _print_run(results, written: Path, shown: str, scenario, sets, seed, quiet: bool, no_plots: bool,
               html_report: bool) -> None:
    """After ``run`` wrote its results: the summary tables, the expect line and where they went."""
    sc = results.scenario
    if not quiet:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 160)  # a file or a pipe: do not squash the tables
        for table in summary_tables(results):
            console.print(table)
        plots = sorted((written / "plots").glob("*.png")) if not no_plots else []
        traces = sorted(written.glob("*.parquet"))
        if sc.expect:
            from kinesim.expect import evaluate

            outcomes = evaluate(results)
            print(f"expect: {sum(o.passed for o in outcomes)} of {len(outcomes)} checks passed "
                  f"({check_command(scenario, sets, seed)} shows them)", flush=True)
        print(f"wrote {shown}/ (summary.json, scenario.yaml, {len(traces)} Parquet traces"
              + (f", {len(plots)} plots" if plots else "") + (", report.html" if html_report else "") + ")",
              flush=True)
    else:
        print(f"wrote {shown}/", flush=True)


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(metavar="SCENARIO.yaml", help="Scenario files (YAML).",
                                                    show_default=False)],
    set_: SetOpt = None,
) -> None:
    """Check scenarios (files, or folders of *.yaml files) without running them.

    Prints 'ok <path>' per valid scenario, one error line per invalid one; exit code 2 if any is invalid.
    """
    from kinesim.cli_check import expand

    overrides = parse_sets(set_)
    files, errors = expand(scenarios)
    for message in errors:
        _error(message)
    failed = len(errors)
    for path in files:
        try:
            load(path, overrides)
        except CliError as exc:
            _error(exc.message)
            failed += 1
            continue
        print(f"ok {path}", flush=True)
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def check(
    scenarios: Annotated[list[Path], typer.Argument(metavar="SCENARIO.yaml|DIR", show_default=False,
                                                    help="Scenario files, or folders of them (*.yaml).")],
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="List only the failed checks.")] = False,
) -> int:
    """Run scenarios and evaluate their expect: checks.

    Prints a table with the measured values; exit code 0 when all pass, 1 when some check fails,
    2 for invalid input.
    """
    from kinesim.cli_check import run_checks

    return run_checks(scenarios, with_seed(parse_sets(set_), seed), quiet=quiet)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a scenario file (for editors: kinesim schema > kinesim.schema.json)."""
    from kinesim.cli_schema import schema_text

    sys.stdout.write(schema_text())
    sys.stdout.flush()


def _display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> NoReturn:
    """Run the ``kinesim`` command line with ``argv`` (default ``sys.argv[1:]``) and exit.

    Exit codes: 0 success, 2 bad input or usage (one ``error:`` line on stderr), 130 interrupted,
    1 unexpected internal error (one line; ``KINESIM_DEBUG=1`` shows the traceback).
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"  # one line, like errors
    DROPPED_INTERRUPT.clear()
    sys.unraisablehook = note_dropped_interrupts(sys.__unraisablehook__)
    try:
        rv = command.main(args=args, prog_name="kinesim", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
        if code == EXIT_INTERRUPTED:
            _error("interrupted; no results were written")
    except CliError as exc:
        _error(exc.message)
        code = exc.code
    except ScenarioError as exc:  # found while running (e.g. firehose.s3.root cannot be written)
        _error(str(exc))
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _error("interrupted; no results were written")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): nothing more to say.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        code = EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the one place that turns anything into one line
        kind = type(exc).__name__
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):
            # click/typer's own errors (usage errors, bad option values): one line, their code.
            code = int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
            if kind == "NoArgsIsHelpError":
                pass  # the help has been printed already
            else:
                ctx = getattr(exc, "ctx", None)
                hint = f" (see: {ctx.command_path} --help)" if ctx is not None and kind != "ClickException" else ""
                _error(f"{exc.format_message()}{hint}")
        elif kind == "Abort":
            _error("aborted")
            code = EXIT_INTERRUPTED
        elif from_interrupt(exc):  # e.g. numba's "returned a result with an exception set"
            _error("interrupted; no results were written")
            code = EXIT_INTERRUPTED
        else:
            if os.environ.get("KINESIM_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            _error(f"internal error: {kind}: {first} (set KINESIM_DEBUG=1 for the traceback)")
            code = EXIT_INTERNAL
    raise SystemExit(code)


if __name__ == "__main__":
    main()
