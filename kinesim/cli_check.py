"""``kinesim check``: run scenarios and evaluate their ``expect:`` checks.

Arguments are scenario files or folders (a folder stands for its ``*.yaml``/``*.yml`` files, in name
order, not recursive). Every valid scenario is run; the result is one table with a row per check:
the scenario, the check, the value measured and PASS or FAIL. Exit status: 0 when every check
passed, 1 when some check failed, 2 when some input was invalid (one ``error:`` line each, on
stderr, naming the file and the YAML path; the valid scenarios still run).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kinesim.cli import CliError, EXIT_BAD_INPUT, EXIT_OK, _error, _progress, fmt_seconds, load

EXIT_FAILED = 1


@dataclass
class ScenarioOutcome:
    """One scenario's run: its path, name, wall time (s) and check results."""

    path: Path
    name: str
    wall_s: float
    results: list = field(default_factory=list)  # kinesim.expect.CheckResult

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


def expand(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files as given and folders as their ``*.yaml``/``*.yml`` files (sorted). Returns the files
    and one error message per argument that is neither."""
    files: list[Path] = []
    errors: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
            if not found:
                errors.append(f"{p}: no scenario files (*.yaml) in this folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: no such scenario file or folder")
    return files, errors


def run_checks(paths: list[Path], overrides: dict[str, str], quiet: bool = False) -> int:
    """Run every scenario under ``paths`` with ``overrides``, print the table, return the exit code."""
    import kinesim
    from kinesim.expect import evaluate

    files, errors = expand(paths)
    for message in errors:
        _error(message)
    invalid = len(errors)
    scenarios = []
    for path in files:
        try:
            scenarios.append((path, load(path, overrides)))
        except CliError as exc:
            _error(exc.message)
            invalid += 1
    outcomes: list[ScenarioOutcome] = []
    show = not quiet and sys.stderr.isatty()
    with _progress(show) as progress:
        task = progress.add_task("checking", total=len(scenarios), simulated="")
        for path, sc in scenarios:
            progress.update(task, description=f"checking {sc.name}")
            start = time.perf_counter()
            results = kinesim.simulate(sc)
            outcomes.append(ScenarioOutcome(path, sc.name, time.perf_counter() - start, evaluate(results)))
            progress.advance(task)
    if outcomes:
        _print_table(outcomes, quiet)
    checks = sum(len(o.results) for o in outcomes)
    failed = sum(o.failed for o in outcomes)
    line = (f"{len(outcomes)} scenario{'s' if len(outcomes) != 1 else ''}, {checks} check{'s' if checks != 1 else ''}: "
            f"{checks - failed} passed, {failed} failed")
    if invalid:
        line += f"; {invalid} invalid input{'s' if invalid != 1 else ''}"
    print(line, flush=True)
    if invalid:
        return EXIT_BAD_INPUT
    return EXIT_FAILED if failed else EXIT_OK


def _print_table(outcomes: list[ScenarioOutcome], quiet: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a file or a pipe: do not squash the table
    table = Table(title="expect checks", title_justify="left", header_style="bold", show_lines=False)
    table.add_column("scenario")
    table.add_column("check")
    table.add_column("measured", justify="right")
    table.add_column("result")
    shown = 0
    for o in outcomes:
        label = f"{o.name} ({fmt_seconds(o.wall_s)})"
        if not o.results:
            if not quiet:
                table.add_row(escape(label), "[dim](no expect checks)[/dim]", "", "–", end_section=True)
                shown += 1
            continue
        rows = [r for r in o.results if not (quiet and r.passed)]
        for i, r in enumerate(rows):
            measured = r.measured_text() if r.measured is not None else r.message
            if r.message and r.measured is not None:
                measured += f" ({r.message})"
            result = "[green]PASS[/green]" if r.passed else "[bold red]FAIL[/bold red]"
            table.add_row(escape(label) if i == 0 else "", escape(r.text), escape(measured), result,
                          end_section=i == len(rows) - 1)
            shown += 1
    if not shown:
        return
    console.print(table)
