"""The public surface imports without loading torch or jax."""

import subprocess
import sys


def test_import_is_lazy():
    code = "import sys, ppl_kernels; print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
