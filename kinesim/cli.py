"""The ``kinesim`` command line: ``kinesim run`` and ``kinesim validate``.

Bad input (an invalid scenario, a missing or unreadable file, bad YAML, a malformed ``--set``, a
usage error) exits with status 2 and exactly one line on stderr, ``error: <file>: <yaml path>:
<message>``, never a traceback. Ctrl-C exits with 130 and leaves no half-written results (the
results folder is written to a temporary folder and moved into place when complete).
Set ``KINESIM_DEBUG=1`` to see the traceback of an unexpected internal error.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results

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
    if target.exists():
        if not target.is_dir():
            raise CliError(f"--out {out}: exists and is not a folder")
        if any(target.iterdir()) and not (target / "summary.json").is_file():
            raise CliError(f"--out {out}: exists and is not a kinesim results folder (no summary.json); "
                           "results replace the whole folder, so choose another one or remove it")
    return target


# ------------------------------------------------------------------ formatting
def fmt_int(v) -> str:
    """``7025 -> '7,025'``; non-integers fall back to :func:`fmt_number`."""
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return fmt_number(v)
    return f"{int(v):,}"


def fmt_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    return f"{v:,.4g}"


def fmt_rate(v) -> str:
    """A fraction as a percentage: ``0.0357 -> '3.57 %'``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v == 0:
        return "0 %"
    pct = v * 100
    if pct < 0.01:
        return "< 0.01 %"
    return f"{pct:.2f} %"


def fmt_seconds(v) -> str:
    """Seconds with a readable unit: ``0.574 -> '574 ms'``, ``690 -> '11.5 min'``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v == 0:
        return "0 s"
    a = abs(v)
    if a < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if a < 1:
        return f"{v * 1e3:.3g} ms"
    if a < 120:
        return f"{v:.3g} s"
    if a < 7200:
        return f"{v / 60:.3g} min"
    if a < 172800:
        return f"{v / 3600:.3g} h"
    return f"{v / 86400:.3g} d"


def _fmt_auto(key: str, v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if key.endswith("_s"):
        return fmt_seconds(v)
    if key.endswith("_rate") or key == "throttle_rate":
        return fmt_rate(v)
    if key.startswith("cost_usd") and isinstance(v, (int, float)):
        return f"$ {v:,.4f}" if abs(v) < 100 else f"$ {v:,.2f}"
    if isinstance(v, (int, float)) or hasattr(v, "dtype"):
        return fmt_number(v.item() if hasattr(v, "item") else v)
    return str(v)


#: Headline rows of the summary table: key, label, formatter.
HEADLINE = (
    ("records_produced", "records produced", fmt_int),
    ("put_attempts", "put attempts (retries included)", fmt_int),
    ("records_throttled", "records throttled", fmt_int),
    ("throttle_rate", "throttle rate", fmt_rate),
    ("records_accepted", "records accepted", fmt_int),
    ("records_dropped", "records dropped", fmt_int),
    ("records_buffered", "records still buffered at the end", fmt_int),
    ("records_expired", "records expired by retention", fmt_int),
    ("put_records_calls", "PutRecords calls", fmt_int),
    ("kinesis_records_sent", "Kinesis records sent", fmt_int),
    ("kinesis_records_accepted", "Kinesis records accepted", fmt_int),
    ("get_records_calls", "GetRecords calls", fmt_int),
    ("read_throttled_calls", "GetRecords calls throttled", fmt_int),
    ("shards_final", "open shards at the end", fmt_int),
    ("duration_s", "simulated time", fmt_seconds),
)

#: Consumer rows of the summary: metric suffix, label, formatter.
CONSUMER_COLUMNS = (
    ("records_processed", "records processed", fmt_int),
    ("latency_p50_s", "latency p50 (event to processed)", fmt_seconds),
    ("latency_p99_s", "latency p99", fmt_seconds),
    ("max_iterator_age_s", "max iterator age", fmt_seconds),
    ("backlog_records", "backlog at the end (records)", fmt_int),
    ("records_expired", "records expired by retention", fmt_int),
    ("read_throttled_calls", "GetRecords calls throttled", fmt_int),
)


def split_summary(summary: dict) -> tuple[dict, dict[str, dict]]:
    """Split a summary dict into stream-level figures and ``{consumer: {metric: value}}``."""
    top: dict = {}
    consumers: dict[str, dict] = {}
    for key, value in summary.items():
        if key.startswith("consumers.") and key.count(".") >= 2:
            name, metric = key[len("consumers."):].rsplit(".", 1)
            consumers.setdefault(name, {})[metric] = value
        else:
            top[key] = value
    return top, consumers


def summary_tables(results: "Results") -> list:
    """Rich tables of the headline figures: the stream and producers, then one row per consumer."""
    from rich.table import Table

    top, consumers = split_summary(results.summary_dict)
    sc = results.scenario
    title = f"{sc.name}: {fmt_seconds(sc.duration)} simulated"
    if not math.isnan(getattr(results, "wall_time_s", float("nan"))):
        title += f" in {fmt_seconds(results.wall_time_s)}"
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    used = set()
    for key, label, fmt in HEADLINE:
        if key not in top:
            continue
        used.add(key)
        text = fmt(top[key])
        if key == "records_dropped":
            reasons = [(k[len("records_dropped_"):], v) for k, v in top.items() if k.startswith("records_dropped_")]
            used.update(f"records_dropped_{r}" for r, _ in reasons)
            parts = [f"{r.replace('_', ' ')} {fmt_int(v)}" for r, v in reasons if v]
            if parts:
                text += f" ({', '.join(parts)})"
        table.add_row(label, text)
    for key, value in top.items():
        if key not in used:
            table.add_row(key.replace("_", " "), _fmt_auto(key, value))
    tables = [table]
    if consumers:
        # One column per consumer: narrow enough for an 80-column terminal with a few consumers.
        ct = Table(title="consumers", title_justify="left", header_style="bold")
        ct.add_column("figure")
        for name in consumers:
            ct.add_column(name, justify="right")
        known = {k for k, _, _ in CONSUMER_COLUMNS}
        for key, label, fmt in CONSUMER_COLUMNS:
            if any(key in m for m in consumers.values()):
                ct.add_row(label, *[fmt(m.get(key)) for m in consumers.values()])
        extra: list[str] = []
        for metrics in consumers.values():
            extra += [m for m in metrics if m not in known and m not in extra]
        for key in extra:
            ct.add_row(key.replace("_", " "), *[_fmt_auto(key, m.get(key)) for m in consumers.values()])
        tables.append(ct)
    return tables


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


@app.command()
def run(
    scenario: ScenarioArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                                help="Results folder (default: results/<scenario name>/); replaced if it "
                                                     "holds earlier results.")] = None,
    set_: SetOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (overrides the scenario's seed).",
                                                show_default=False)] = None,
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
    overrides = parse_sets(set_)
    if seed is not None:
        overrides["seed"] = str(seed)
    sc = load(scenario, overrides)
    target = _check_out(out if out is not None else Path("results") / sc.name, scenario)

    import kinesim

    show = not quiet and sys.stderr.isatty()
    with _progress(show) as progress:
        task = progress.add_task(f"simulating {sc.name}", total=float(sc.duration),
                                 simulated=f"0 s / {fmt_seconds(sc.duration)}")

        def report(done: float, total: float) -> None:
            progress.update(task, completed=done, simulated=f"{fmt_seconds(done)} / {fmt_seconds(total)}")

        results = kinesim.simulate(sc, progress=report)
        progress.update(task, description="writing results", completed=float(sc.duration))
        try:
            written = results.save(target, plots=not no_plots, report=html_report)
        except OSError as exc:
            raise CliError(f"cannot write results to {out or target}: {exc.strerror or exc}") from None

    shown = _display_path(written)
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
                  f"(kinesim check {scenario} shows them)", flush=True)
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
    """Check scenarios without running them.

    Prints 'ok <path>' per valid scenario, one error line per invalid one; exit code 2 if any is invalid.
    """
    overrides = parse_sets(set_)
    failed = 0
    for path in scenarios:
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="List only the failed checks.")] = False,
) -> int:
    """Run scenarios and evaluate their expect: checks.

    Prints a table with the measured values; exit code 0 when all pass, 1 when some check fails,
    2 for invalid input.
    """
    from kinesim.cli_check import run_checks

    return run_checks(scenarios, parse_sets(set_), quiet=quiet)


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
    try:
        rv = command.main(args=args, prog_name="kinesim", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
        if code == EXIT_INTERRUPTED:
            _error("interrupted; no results were written")
    except CliError as exc:
        _error(exc.message)
        code = exc.code
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
        else:
            if os.environ.get("KINESIM_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            _error(f"internal error: {kind}: {first} (set KINESIM_DEBUG=1 for the traceback)")
            code = EXIT_INTERNAL
    raise SystemExit(code)


if __name__ == "__main__":
    main()
