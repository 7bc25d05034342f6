"""Writing a run's results folder (:meth:`kinesim.results.Results.save`) and the rules for which
folders a run may replace."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from kinesim.results import TRACES


def save_results(results, directory: str | os.PathLike, plots: bool = False, report: bool = False) -> Path:
    """:meth:`kinesim.results.Results.save`: everything written to a temporary folder beside
    ``directory`` and moved into place only when complete."""
    target = Path(directory).expanduser().resolve()
    problem = output_problem(target)
    if problem:
        raise FileExistsError(f"{target}: {problem}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        (tmp / RESULTS_MARKER).write_text("written by kinesim; this whole folder is replaced by the next run\n")
        (tmp / "summary.json").write_text(json.dumps(_jsonable(results.summary_dict), indent=2) + "\n")
        for name in TRACES:
            getattr(results, name).to_parquet(tmp / f"{name}.parquet", index=False)
        import yaml

        (tmp / "scenario.yaml").write_text(yaml.safe_dump(results.scenario.model_dump(mode="json", exclude_none=True, warnings=False), sort_keys=False))
        if results.s3_folder is not None:
            _copy_tree(results.s3_folder.path, tmp / "s3")
        if plots:
            from kinesim.plots import save_plots

            save_plots(results, tmp / "plots")
        if report:
            from kinesim.report import write_report

            write_report(results, tmp, plots_dir=tmp / "plots" if plots else None)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        results.saved_to = target  # complete: an interrupt from here on leaves these results
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, hard-linking files where the filesystem allows (no second copy on disk)."""
    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)


#: A file in every results folder: only folders holding it (and nothing kinesim does not write)
#: are replaced by a new run.
RESULTS_MARKER = ".kinesim-results"
#: What a results folder may hold: the files and folders :meth:`Results.save` writes.
RESULTS_ENTRIES = {RESULTS_MARKER, "summary.json", "scenario.yaml", "report.html", "plots", "s3",
                   *(f"{name}.parquet" for name in TRACES)}


def output_problem(path: Path) -> str | None:
    """Why ``save`` must not replace ``path`` (None when it may): a file (there or where a parent
    folder must be), or a folder that is not empty and holds anything but an earlier kinesim result."""
    if not path.exists():
        blocker = next((p for p in path.parents if p.exists()), path.parent)
        return None if blocker.is_dir() else f"cannot be created: {blocker} is a file, not a folder"
    if not path.is_dir():
        return "exists and is not a folder"
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return None
    if RESULTS_MARKER not in entries:
        return ("exists and is not a kinesim results folder; results replace the whole folder, "
                "so choose a new or empty one")
    foreign = sorted(entries - RESULTS_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return (f"holds files kinesim did not write ({shown}); results replace the whole folder, "
                "so move them or choose another folder")
    return None


def is_replaceable_output(path: Path) -> bool:
    """Whether ``save`` may replace ``path``: absent, empty, or an earlier kinesim result alone."""
    return output_problem(path) is None


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (float, np.floating)):
            v = None if math.isnan(v) else float(v)
        out[k] = v
    return out
