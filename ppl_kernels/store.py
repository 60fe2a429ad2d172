"""Draws streamed to disk while the chains run, with a checkpoint to resume from.

:func:`stream` runs SGHMC in either backend in chunks of ``chunk_draws`` kept
samples.  After each chunk it exports the chunk with
:func:`ppl_kernels.to_inference_data` (every group an in-memory run has:
``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data`` and the
predictions asked for), writes it as one NetCDF file, and then saves the chains'
states (positions, momenta, draw index, epochs, random streams, adaptation)
next to it.  Memory stays that of one chunk whatever the number of draws, a run
killed at any point keeps every chunk written before, and ``resume=True``
continues from the last checkpoint exactly as the uninterrupted run would have
gone on (the kernels' continuation is exact: NumPyro's ``post_warmup_state``,
:meth:`ppl_kernels.pyro.SGHMC.continue_from`).  :func:`open_store` reads a store
as one :class:`arviz.InferenceData`.

A store is a folder::

    run.json              the run's settings (a resume must repeat them)
    chunk-000000.nc ...   one InferenceData per chunk (draw coordinates continue)
    checkpoint.pkl        chunks written, draws kept, the chains' states (and the
                          held-out averages of ``predictive_mean=``)
    .lock                 the writing process's id while it runs

Files are written under a temporary name and renamed, so a file is either
complete or absent.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import _host
from .arviz import _check_predictions, _export, _merge_means
from .arviz import predictive_mean as _predictive_mean
from .config import positive_int
from .runner import Interrupted, sample, warn_kinetic_temperature

__all__ = ["stream", "open_store", "Interrupted", "RUN_FILE", "CHECKPOINT_FILE"]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pkl"
_LOCK = ".lock"
_FORMAT = 1


def _chunk_file(i: int) -> str:
    return f"chunk-{i:06d}.nc"


def _atomic_write(path: Path, write: Callable[[str], None]):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    """One writer per store: ``.lock`` made with ``O_EXCL``; a lock left by a process that
    no longer runs (a killed run) is taken over."""

    def __init__(self, folder: Path):
        self.path = folder / _LOCK

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise ValueError(f"store {str(self.path.parent)!r} is being written by another process "
                                     f"(pid {pid}); wait for it or choose another store") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise ValueError(f"store {str(self.path.parent)!r}: could not take its lock {str(self.path)!r}")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _settings(backend, kernel, *, num_samples, num_warmup, num_chains, seed, chain_method, chunk_draws, sites,
              export, predictive_mean) -> dict:
    settings = {
        "format": _FORMAT, "backend": backend, "kernel_json": kernel.config.to_json(), "num_samples": num_samples,
        "num_warmup": num_warmup, "num_chains": num_chains, "seed": seed, "chain_method": chain_method,
        "chunk_draws": chunk_draws, "sites": sites, "export": sorted(export),
    }
    if predictive_mean is not None:  # absent otherwise: stores made before it existed resume unchanged
        settings["predictive_mean"] = sorted(predictive_mean)
    return settings


def _chunk_mean(mcmc, offset: int, run_draws: int, spec, export):
    """:func:`ppl_kernels.predictive_mean` of the chunk's predictions at ``spec``."""
    chunking = {k: export[k] for k in ("chunk_size", "draw_chunk_size") if k in export}
    idata = _export(mcmc, log_likelihood=False, predictions=spec, chunk_of=(offset, run_draws), **chunking)
    return _predictive_mean(idata)


def _prepare(folder: Path, settings: dict, resume: bool):
    """Create the store, or check that the one to resume was made with the same settings;
    return its checkpoint (``None`` when nothing was kept yet)."""
    run_file = folder / RUN_FILE
    if any(p.name != _LOCK for p in folder.iterdir()):
        if not run_file.exists():
            raise ValueError(f"store {str(folder)!r} exists and is not a store of ppl_kernels (no {RUN_FILE})")
        if not resume:
            raise ValueError(f"store {str(folder)!r} exists: pass resume=True to continue it, or choose another store")
        try:
            old = json.loads(run_file.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"store {str(folder)!r}: unreadable {RUN_FILE} ({e})") from None
        differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if differ:
            raise ValueError(f"store {str(folder)!r} was made with other settings ({', '.join(differ)} differ); "
                             "resume with the same ones, or choose another store")
        checkpoint = folder / CHECKPOINT_FILE
        if not checkpoint.exists():
            return None
        with open(checkpoint, "rb") as f:
            return pickle.load(f)
    _atomic_write(run_file, lambda p: Path(p).write_text(json.dumps(settings, indent=1)))
    return None


def _chunk_idata(mcmc, offset: int, run_draws: int, sites, export):
    """The chunk's export with draw coordinates from ``offset`` and only ``sites`` in the
    posterior (its predictive draws those of the whole run's export)."""
    import arviz as az

    idata = _export(mcmc, chunk_of=(offset, run_draws), **export)
    groups = {}
    for name in idata.groups():
        ds = idata[name]
        if name == "posterior" and sites is not None:
            ds = ds[[v for v in ds.data_vars if v in sites]]
        if "draw" in ds.dims:
            ds = ds.assign_coords(draw=np.arange(offset, offset + ds.sizes["draw"]))
        groups[name] = ds
    return az.InferenceData(**groups)


def stream(
    backend: str,
    store,
    *,
    model: Callable | None = None,
    potential_fn: Callable | None = None,
    init_params: dict | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    kernel_kwargs: dict[str, Any] | None = None,
    num_samples: int = 1000,
    num_warmup: int = 0,
    num_chains: int = 1,
    seed: int = 0,
    chain_method: str = "sequential",
    progress_bar: bool = False,
    chunk_draws: int = 100,
    sites: list | None = None,
    export: dict | None = None,
    predictive_mean: dict | None = None,
    resume: bool = False,
    lazy: bool = False,
):
    """Run SGHMC as :func:`ppl_kernels.runner.sample` does, writing the kept draws to ``store``
    in chunks, with a checkpoint after each; return the store as
    :class:`arviz.InferenceData` (:func:`open_store`).

    Parameters
    ----------
    backend, model, potential_fn, init_params, model_args, model_kwargs, kernel_kwargs
        As in :func:`ppl_kernels.runner.sample`.
    store : str or path
        The store's folder; it must not exist (or be empty) unless ``resume``.
    num_samples, num_warmup, num_chains, seed, chain_method, progress_bar
        As in :func:`ppl_kernels.runner.sample` (``thinning`` goes in ``kernel_kwargs``).
    chunk_draws : int
        Kept samples per chain in each chunk: what memory holds at once, and the most
        draws an interrupted run loses.
    sites : list of str, optional
        Write only these sites to ``posterior`` (the statistics, log-likelihood and
        predictions are written whole); by default every site.
    export : dict, optional
        Keyword arguments of :func:`ppl_kernels.to_inference_data` for each chunk
        (``log_likelihood``, ``predictions``, ``posterior_predictive``, ``coords``,
        ``dims``, ``chunk_size`` ...).
    predictive_mean : dict, optional
        Held-out data as in ``to_inference_data(predictions=...)`` (``model_args``,
        ``model_kwargs``, ``observed`` ...): the posterior predictive averaged over
        every draw so far (:func:`ppl_kernels.predictive_mean`: mean class
        probabilities, log predictive density, mean prediction), updated after each
        chunk and saved with the checkpoint, without keeping a draw of it; the store's
        InferenceData has it as the group ``predictive_mean``.  With ``sites=[]``, a
        run of a large network keeps its statistics and held-out averages only.
    resume : bool
        Continue the run in ``store`` from its last checkpoint (the settings must be the
        same): the draws that follow are those the uninterrupted run would have made.
    lazy : bool
        Return the store opened lazily (:func:`open_store`), for a run whose draws do not
        fit in memory.

    Returns
    -------
    arviz.InferenceData

    Raises
    ------
    ValueError
        For bad arguments, an existing store without ``resume``, a store made with
        other settings, or a store another running process writes to.
    ppl_kernels.runner.Interrupted
        On Ctrl-C (a ``KeyboardInterrupt``), saying how many draws the store kept
        (``ppl_kernels.store.Interrupted`` is the same class).
    """

    host = _host.host_for(backend)
    positive_int("num_samples", num_samples)
    positive_int("chunk_draws", chunk_draws)
    if sites is not None and (isinstance(sites, str) or not all(isinstance(s, str) for s in sites)):
        raise ValueError(f"sites must be a list of site names, got {sites!r}")
    sites = None if sites is None else list(sites)
    export = dict(export or {})
    if "model_args" in export or "model_kwargs" in export:
        raise ValueError("export must not hold model_args / model_kwargs: the chunks are exported at the run's own")
    predictive_mean = _check_predictions("predictive_mean", predictive_mean)
    folder = Path(store).expanduser().absolute()
    model_kwargs = dict(model_kwargs or {})
    kernel_kwargs = dict(kernel_kwargs or {})
    kernel = host.SGHMC(model, potential_fn, **kernel_kwargs)  # bad kernel arguments fail here, before any file
    kernel.rng_seed = seed
    settings = _settings(backend, kernel, num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains,
                         seed=seed, chain_method=chain_method, chunk_draws=chunk_draws, sites=sites, export=export,
                         predictive_mean=predictive_mean)
    folder.mkdir(parents=True, exist_ok=True)
    with _Lock(folder):
        checkpoint = _prepare(folder, settings, resume)
        written = 0 if checkpoint is None else checkpoint["chunks"]
        done = 0 if checkpoint is None else checkpoint["draws"]
        average = None if checkpoint is None else checkpoint.get("predictive_mean")
        for stale in folder.glob("chunk-*.nc"):  # written after the last checkpoint: redone
            if int(stale.stem.split("-")[1]) >= written:
                stale.unlink()
        mcmc = None
        try:
            while done < num_samples:
                n = min(chunk_draws, num_samples - done)
                if checkpoint is None:
                    mcmc = sample(backend, model=model, potential_fn=potential_fn, init_params=init_params,
                                  model_args=model_args, model_kwargs=model_kwargs, kernel_kwargs=kernel_kwargs,
                                  num_samples=n, num_warmup=num_warmup, num_chains=num_chains, seed=seed,
                                  chain_method=chain_method, progress_bar=progress_bar, warn=False)
                    kernel = host.kernel_of(mcmc)
                else:
                    mcmc = host.continue_run(kernel, checkpoint["states"], num_warmup=num_warmup, num_samples=n,
                                             num_chains=num_chains, chain_method=chain_method,
                                             progress_bar=progress_bar, model_args=tuple(model_args),
                                             model_kwargs=model_kwargs, mcmc=mcmc)
                idata = _chunk_idata(mcmc, done, num_samples, sites, export)
                if predictive_mean is not None:
                    mean = _chunk_mean(mcmc, done, num_samples, predictive_mean, export)
                    average = mean if average is None else _merge_means(average, mean)
                _atomic_write(folder / _chunk_file(written), idata.to_netcdf)
                written, done = written + 1, done + n
                checkpoint = {"chunks": written, "draws": done, "states": host.last_states(mcmc)}
                if average is not None:  # with the checkpoint: always the average of the chunks it counts
                    checkpoint["predictive_mean"] = average
                _atomic_write(folder / CHECKPOINT_FILE, lambda p, c=checkpoint: _pickle(c, p))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted after {done} of {num_samples} draws per chain: {str(folder)!r} keeps them "
                              "(ppl_kernels.open_store); run again with resume=True to go on", folder, done) from None
    if mcmc is not None:  # (the kernels warned of a chain that froze, in whichever chunk)
        warn_kinetic_temperature(mcmc)
    return open_store(folder, lazy=lazy)


def _pickle(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def open_store(store, *, lazy: bool = False):
    """A store written by :func:`stream` as one :class:`arviz.InferenceData`: the chunks'
    groups joined along ``draw`` (groups without draws, such as ``observed_data``, from the
    first chunk), the attributes of the last chunk with the run's lengths so far, and
    the group ``predictive_mean`` when the run averaged its predictions.

    Parameters
    ----------
    store : str or path
    lazy : bool
        Leave the draws on disk: every variable is a dask array over the chunk files, read
        when computed (``.values``, ``.load()``, an ArviZ function), so that a store larger
        than memory opens and reduces chunk by chunk.  Needs dask.  By default every chunk
        is read into memory.

    Raises
    ------
    ValueError
        If ``store`` is not a store, or holds no chunk yet.
    ImportError
        If ``lazy`` and dask is not installed.
    """
    import arviz as az
    import xarray as xr

    if lazy:
        try:
            import dask  # noqa: F401
        except ImportError:
            raise ImportError("open_store(..., lazy=True) reads the chunks through dask, which is not installed: "
                              "pip install dask") from None
    folder = Path(store).expanduser().absolute()
    try:
        settings = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        raise ValueError(f"store {str(folder)!r} is not a store of ppl_kernels (no readable {RUN_FILE})") from None
    checkpoint = folder / CHECKPOINT_FILE
    written, average = 0, None
    if checkpoint.exists():
        with open(checkpoint, "rb") as f:
            saved = pickle.load(f)
        written, average = saved["chunks"], saved.get("predictive_mean")
    if written == 0:
        raise ValueError(f"store {str(folder)!r} holds no finished chunk yet")
    paths = [str(folder / _chunk_file(i)) for i in range(written)]
    names = az.from_netcdf(paths[0]).groups()  # in ArviZ's order of groups

    def read(path, name):
        # one reader for both ways, so that a lazy store is value for value the eager one
        if lazy:
            return xr.open_dataset(path, group=name, engine="h5netcdf", chunks={})
        with xr.open_dataset(path, group=name, engine="h5netcdf") as ds:
            return ds.load()

    groups = {}
    for name in names:
        parts = [read(paths[0], name)]
        if "draw" in parts[0].dims:
            parts += [read(p, name) for p in paths[1:]]
        groups[name] = (xr.concat(parts, dim="draw") if len(parts) > 1 else parts[0]).assign_attrs(parts[-1].attrs)
    total = int(groups["sample_stats"].sizes["draw"])
    for name, ds in groups.items():
        if "num_samples" in ds.attrs:  # a chunk's lengths are its own; the store's are the run's
            groups[name] = ds.assign_attrs(num_samples=total, num_warmup=settings["num_warmup"])
    if average is not None:
        groups["predictive_mean"] = average
    return az.InferenceData(**groups)
