#!/usr/bin/env bash
# JAX side of the benchmark on one NVIDIA GPU: W2 (784-400-400-10, B=256) and
# W4 (784-1200-1200-10, B=1000, N=60000), with the threefry / rbg / unsafe_rbg
# noise rows.  Installs nothing from the internet: jax with CUDA must already be
# importable, or a local wheel folder given as WHEEL_DIR (pip --no-index).
# Usage: bash benchmarks/gpu.sh [OUT_DIR]          (about 3 minutes on an H100)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results-gpu}"

if [ -n "${WHEEL_DIR:-}" ]; then
  python -m pip install --no-index --find-links "$WHEEL_DIR" "jax[cuda12]" >/dev/null \
    || { echo "gpu.sh: cannot install jax[cuda12] from WHEEL_DIR=$WHEEL_DIR (no internet used)" >&2; exit 2; }
fi
python - <<'PY' || exit 2
import sys
try:
    import jax
except ImportError:
    sys.exit("gpu.sh: jax is not installed; preinstall jax with CUDA or set WHEEL_DIR to a local wheel folder")
gpus = [d for d in jax.devices() if d.platform == "gpu"]
if not gpus:
    sys.exit(f"gpu.sh: jax {jax.__version__} sees no GPU (devices: {jax.devices()}); install the CUDA build of jaxlib")
print(f"gpu.sh: jax {jax.__version__} on {gpus[0].device_kind}")
PY
python -m pip install --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
# no scaling / storage sections: they are CPU questions; 3 timed rounds keep it under 4 minutes
timeout 230 python -m ppl_kernels.bench --backends numpyro --workloads W2 W4 --repeats 3 \
  --no-scaling --no-storage --out "$OUT"
