"""The layout holds: the linters pass, the layer contracts of ``pyproject.toml`` are
kept, the twin backends have the same files and public functions, and no code
outside a backend package reads a private attribute of a kernel or a host ``MCMC``."""

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TWIN_FILES = ["__init__.py", "epochs.py", "host.py", "integrator.py", "kernel.py", "model.py"]


def _run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    proc = _run(sys.executable, "-m", "ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts_are_kept():
    proc = _run(sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()")
    assert proc.returncode == 0 and "0 broken" in proc.stdout, proc.stdout + proc.stderr


def test_backends_are_twins():
    for backend in ("pyro", "numpyro"):
        files = sorted(p.name for p in (ROOT / "ppl_kernels" / backend).glob("*.py"))
        assert files == sorted(TWIN_FILES), (backend, files)
    for module in ("integrator", "epochs", "host", "model"):
        pyro_mod = importlib.import_module(f"ppl_kernels.pyro.{module}")
        numpyro_mod = importlib.import_module(f"ppl_kernels.numpyro.{module}")
        shared = set(numpyro_mod.__all__)
        # model.py: Pyro alone needs is_identity; integrator.py: Pyro alone needs sghmc_move (its MCMC hands values)
        assert shared <= set(pyro_mod.__all__), (module, shared - set(pyro_mod.__all__))
        for name in shared:
            a, b = getattr(pyro_mod, name), getattr(numpyro_mod, name)
            if inspect.isfunction(a):
                # the same positional contract; a host may add keyword-only options (Pyro's jit_compile)
                def contract(f):
                    return [p for p in inspect.signature(f).parameters.values() if p.kind != p.KEYWORD_ONLY]

                assert contract(a) == contract(b), (module, name)
    from ppl_kernels.numpyro import SGHMCState as NS
    from ppl_kernels.pyro import SGHMCState as PS

    assert PS._fields == NS._fields


#: Private attributes of host MCMC objects and of our kernels that only a backend's own files may read.
_PRIVATE = re.compile(r"\.(_diagnostics|_args|_kwargs|_samples|_static|_state|_potential_fn|_init_strategy|_model"
                      r"|_ppl_seed|_initial_params|_stats)\b")


@pytest.mark.parametrize("folder", ["ppl_kernels", "examples", "benchmarks"])
def test_no_private_run_attributes_outside_the_backends(folder):
    offenders = []
    for path in (ROOT / folder).rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("ppl_kernels/pyro/", "ppl_kernels/numpyro/")):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _PRIVATE.fullmatch("." + node.attr) \
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                offenders.append(f"{rel}:{node.lineno} .{node.attr}")
    assert not offenders, offenders
