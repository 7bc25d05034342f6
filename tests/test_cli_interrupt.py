"""Ctrl-C on the command line: exit code 130, one line, and no results unless they were complete
(``kinesim/cli.py``)."""
from __future__ import annotations

import ctypes

import kinesim
from tests.test_cli import invoke, write_scenario


def interrupted(*args, **kwargs):
    """Stands in for a function that Ctrl-C stops."""
    raise KeyboardInterrupt


def test_keyboard_interrupt_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    scenario = write_scenario(tmp_path)
    monkeypatch.setattr(kinesim, "simulate", interrupted)
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out"], capsys)
    assert code == 130
    assert len(err.splitlines()) == 1 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]


def test_a_ctrl_c_that_a_c_callback_dropped_still_interrupts_the_run(tmp_path, capsys, monkeypatch):
    """numba's compiler calls back into Python through ctypes, which can only print an exception
    raised there ("Exception ignored ... Traceback") and go on: a Ctrl-C during the first compile
    used to be lost, and the run wrote its results and exited 0."""
    scenario = write_scenario(tmp_path)
    simulate = kinesim.simulate

    def compiles_and_is_interrupted(*args, **kwargs):
        def callback():
            raise KeyboardInterrupt

        ctypes.CFUNCTYPE(None)(callback)()  # the exception is dropped, as in numba's callbacks
        return simulate(*args, **kwargs)

    monkeypatch.setattr(kinesim, "simulate", compiles_and_is_interrupted)
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out"], capsys)
    assert code == 130
    assert err.splitlines() == ["error: interrupted; no results were written"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]
    monkeypatch.setattr(kinesim, "simulate", simulate)  # the next run is not affected
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 0 and (tmp_path / "out" / "summary.json").exists()


def test_a_ctrl_c_after_the_results_were_written_says_so(tmp_path, capsys, monkeypatch):
    from kinesim import cli

    scenario = write_scenario(tmp_path)
    monkeypatch.setattr(cli, "summary_tables", interrupted)
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out"], capsys)
    assert code == 130
    assert err.splitlines() == [f"error: interrupted; the results were written to {tmp_path / 'out'}/"]
    assert (tmp_path / "out" / "summary.json").exists()


def test_an_interrupt_inside_compiled_code_is_an_interrupt_not_an_internal_error(tmp_path, capsys, monkeypatch):
    """numba reports a Ctrl-C inside a kernel call as "SystemError: ... returned a result with an
    exception set", the KeyboardInterrupt as its context: exit 130, not exit 1."""
    scenario = write_scenario(tmp_path)

    def kernel_interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("CPUDispatcher(<function compiled_window>) returned a result with an exception set")

    monkeypatch.setattr(kinesim, "simulate", kernel_interrupted)
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out"], capsys)
    assert code == 130 and err.splitlines() == ["error: interrupted; no results were written"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]


def test_an_interrupt_once_the_folder_is_complete_says_the_results_were_written(tmp_path, capsys, monkeypatch):
    """A Ctrl-C between the results folder being moved into place and the end of save() (the old
    folder's removal) used to say "no results were written" although they were."""
    import shutil

    scenario = write_scenario(tmp_path)
    invoke(["run", scenario, "--out", tmp_path / "out", "-q"], capsys)  # an earlier result to replace
    real_rmtree = shutil.rmtree

    def interrupted_rmtree(path, *args, **kwargs):
        if ".old-" in str(path):
            real_rmtree(path, *args, **kwargs)
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 130 and err.splitlines() == [f"error: interrupted; the results were written to {tmp_path / 'out'}/"]
    assert (tmp_path / "out" / "summary.json").exists()
