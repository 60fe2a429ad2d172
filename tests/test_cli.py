"""``ppl-kernels``: a sweep end to end, report reading it back, and bad arguments."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ppl_kernels import cli

TINY = ["--samples", "12", "--num-steps", "2", "--burn-in", "2"]


def _entries(path):
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_sweep_writes_a_run_folder_that_report_reads_back(tmp_path, backend, capsys):
    out = tmp_path / "run"
    argv = ["sweep", "--model", "logreg-cancer", "--backend", backend, "--temperatures", "1", "0.1",
            "--boost", "3", "--friction-scale", "0.5", "--resample-scale", "none", "1.5", *TINY, "--out", str(out)]
    assert cli.main(argv) == 0
    assert _entries(tmp_path) == ["run"]  # no temporary folder left behind
    meta = json.loads((out / "run.json").read_text())
    assert meta["complete"] is True and meta["backend"] == backend and meta["burn_in"] == 2
    labels = [e["label"] for e in meta["runs"]]
    assert labels == ["T=1 α=3 γ=0.5", "T=1 α=3 γ=0.5 β=1.5", "T=0.1 α=3 γ=0.5", "T=0.1 α=3 γ=0.5 β=1.5"]
    table = pd.read_csv(out / "comparison.csv", index_col="label")
    assert list(table.index) == labels
    np.testing.assert_allclose(table["temperature"], [1, 1, 0.1, 0.1])
    assert table["boost"].eq(3).all() and table["test_accuracy"].between(0, 1).all()
    assert (table["test_nll"] > 0).all()
    figures = _entries(out / "figures")
    assert "kinetic_temperature.png" in figures and "cold_posterior_test_nll.png" in figures
    assert sum(f.startswith("norm_trajectories") for f in figures) == 2  # one per kernel setting
    printed = capsys.readouterr().out
    assert str(out) in printed and "T=0.1 α=3 γ=0.5 β=1.5" in printed

    import arviz as az

    idata = az.from_netcdf(str(out / meta["runs"][1]["file"]))
    assert idata.posterior.attrs["backend"] == backend
    assert idata.sample_stats["theta_sq_norm"].shape == (1, 12)

    (out / "comparison.csv").unlink()
    for f in (out / "figures").iterdir():
        f.unlink()
    assert cli.main(["report", str(out)]) == 0
    again = pd.read_csv(out / "comparison.csv", index_col="label")
    pd.testing.assert_frame_equal(again, table)
    assert _entries(out / "figures") == figures


def test_sweep_with_a_cyclical_schedule_records_it(tmp_path):
    out = tmp_path / "cyc"
    argv = ["sweep", "--model", "mixture-2d", "--boost", "3", "--friction-scale", "0.001", "--resample-scale", "30",
            "--schedule", "cyclical:4:0.5:0.01", "--samples", "8", "--num-steps", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    import arviz as az

    (entry,) = json.loads((out / "run.json").read_text())["runs"]
    stats = az.from_netcdf(str(out / entry["file"])).sample_stats
    beta = stats["resample_scale"].values[0]
    np.testing.assert_allclose(beta[:4], [30, 0.01 + 29.99 * (np.cos(np.pi / 4) + 1) / 2, 0.01 + 29.99 / 2,
                                          0.01 + 29.99 * (np.cos(3 * np.pi / 4) + 1) / 2], rtol=1e-5)
    np.testing.assert_array_equal(stats["phase"].values[0], [1, 1, 0, 0] * 2)


BAD = [
    ["sweep"],
    ["sweep", "--model", "mnist"],
    ["sweep", "--model", "double-well", "--temperatures", "-1"],
    ["sweep", "--model", "double-well", "--temperatures", "hot"],
    ["sweep", "--model", "double-well", "--boost", "0"],
    ["sweep", "--model", "double-well", "--resample-scale", "-0.1"],
    ["sweep", "--model", "double-well", "--schedule", "cyclical:0:0.5"],
    ["sweep", "--model", "double-well", "--schedule", "cyclical:10:0.5"],  # no β to cycle
    ["sweep", "--model", "double-well", "--samples", "10", "--burn-in", "10"],
    ["sweep", "--model", "double-well", "--samples", "1"],  # no draws left for ELPD-LOO
    ["sweep", "--model", "double-well", "--samples", "3", "--burn-in", "2"],
    ["sweep", "--model", "double-well", "--step-size", "1", "--friction", "3"],  # ε C / M ≥ 2: unstable
    ["sweep", "--model", "double-well", "--subsample-size", "100000"],
    ["sweep", "--model", "double-well", "--temperatures", "1", "1"],
    ["sweep", "--model", "double-well", "--backend", "tensorflow"],
    ["demo", "--samples", "0"],
    ["demo", "--backend", "jax"],
    ["report"],
    ["frobnicate"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments_exit_2_with_one_line_and_no_folder(tmp_path, argv, capsys):
    out = tmp_path / "out"
    full = argv + ["--out", str(out)] if argv[0] in ("sweep", "demo") else argv
    assert cli.main(full) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ppl-kernels") and "error:" in err
    assert _entries(tmp_path) == []


def test_existing_out_folder_is_refused(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert cli.main(["sweep", "--model", "double-well", "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err
    assert _entries(tmp_path / "taken") == []


def _flaky(monkeypatch, fail_on, exc):
    """Make the ``fail_on``-th ``runner.sample`` call raise ``exc``; return the list of calls."""
    from ppl_kernels import runner

    calls, failed = [], []
    real = runner.sample

    def flaky(*args, **kwargs):
        calls.append(kwargs["kernel_kwargs"]["temperature"])
        if len(calls) == fail_on and not failed:  # once
            failed.append(1)
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "sample", flaky)
    return calls


SWEEP3 = ["sweep", "--model", "double-well", "--temperatures", "1", "0.5", "0.25", "--samples", "4", "--num-steps", "2"]


@pytest.mark.parametrize("exc", [RuntimeError("worker died"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_failure_keeps_the_finished_runs_and_resume_runs_the_rest(tmp_path, monkeypatch, capsys, exc):
    out = tmp_path / "run"
    calls = _flaky(monkeypatch, 2, exc)
    if isinstance(exc, KeyboardInterrupt):
        assert cli.main([*SWEEP3, "--out", str(out)]) == 130
    else:
        with pytest.raises(RuntimeError, match="worker died"):
            cli.main([*SWEEP3, "--out", str(out)])
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ppl-kernels")]  # not the bars
    assert len(ours) == 1 and "1 of 3 runs are finished" in ours[0] and f"--resume {out}" in ours[0]
    # the finished run is final and listed; nothing half-written is left
    meta = json.loads((out / "run.json").read_text())
    assert meta["complete"] is False and [e["label"] for e in meta["runs"]] == ["T=1"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["00_T=1.nc"]
    assert cli.main(["report", str(out)]) == 2 and "--resume" in capsys.readouterr().err
    # resuming runs only the two missing runs, then the folder is complete
    calls.clear()
    assert cli.main([*SWEEP3, "--resume", str(out)]) == 0
    assert calls == [0.5, 0.25]
    meta = json.loads((out / "run.json").read_text())
    assert meta["complete"] is True and [e["label"] for e in meta["runs"]] == ["T=1", "T=0.5", "T=0.25"]
    assert cli.main(["report", str(out)]) == 0
    # a resume with other arguments is refused, naming what differs
    capsys.readouterr()
    assert cli.main([*SWEEP3[:-4], "--samples", "5", "--num-steps", "2", "--resume", str(out)]) == 2
    assert "samples" in capsys.readouterr().err


def test_a_second_writer_of_one_folder_gets_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """Two sweeps into one --out: the second to create it (after both checked it was free) stops at once."""
    out = tmp_path / "run"
    real_check = cli._check_out

    def racing(folder):
        checked = real_check(folder)
        checked.mkdir()  # the other sweep creates it between the check and this sweep's mkdir
        (checked / "theirs").write_text("x")
        return checked

    monkeypatch.setattr(cli, "_check_out", racing)
    calls = _flaky(monkeypatch, 99, RuntimeError)
    assert cli.main([*SWEEP3, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another sweep" in err
    assert calls == [] and sorted(p.name for p in out.iterdir()) == ["theirs"]


@pytest.mark.parametrize("content", [None, {"format": 1, "complete": False, "runs": []}, "not json"])
def test_report_refuses_what_is_not_a_complete_run_folder(tmp_path, content, capsys):
    folder = tmp_path / "half"
    folder.mkdir()
    if content is not None:
        (folder / "run.json").write_text(content if isinstance(content, str) else json.dumps(content))
    assert cli.main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder) in err


def test_bench_dispatches_to_the_benchmarks(monkeypatch):
    """``ppl-kernels bench ARGS`` runs the checkout's ``benchmarks/run.py ARGS`` and returns its exit code."""
    import types

    seen = []

    def fake_run(cmd, check):
        seen.append(cmd)
        return types.SimpleNamespace(returncode=3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli.main(["bench", "--quick", "--help"]) == 3
    assert seen == [[sys.executable, str(cli._BENCH_SCRIPT), "--quick", "--help"]]
    assert cli._BENCH_SCRIPT.is_file()  # this checkout has the benchmarks


def test_bench_outside_a_checkout_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "_BENCH_SCRIPT", tmp_path / "benchmarks" / "run.py")  # an installed package
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "benchmarks live in the source checkout" in err


def test_console_script_is_installed():
    res = subprocess.run([sys.executable, "-m", "ppl_kernels.cli", "sweep", "--model", "x"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    help_ = subprocess.run(["ppl-kernels", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "demo" in help_.stdout and "sweep" in help_.stdout
