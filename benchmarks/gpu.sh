#!/usr/bin/env bash
# JAX side of the benchmark on one NVIDIA GPU: W2 (784-400-400-10, B=256) and
# W4 (784-1200-1200-10, B=1000, N=60000), with the threefry / rbg / unsafe_rbg
# noise rows.  Installs nothing from the internet: jax with CUDA must already be
# importable; WHEEL_DIR may name a local folder of extra wheels (numpyro,
# blackjax) installed with pip --no-index into a private target folder.
# Each workload runs on its own, so a slow one cannot take the other's results.
# Extra arguments of benchmarks/run.py (e.g. --baseline PATH) come after OUT_DIR.
# Usage: bash benchmarks/gpu.sh [OUT_DIR [ARGS...]]  (at most 4 minutes)
#        GPU_SH_DRY_RUN=1 bash benchmarks/gpu.sh   (CPU smoke run of the same steps)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results-gpu}"
shift $(( $# > 0 ? 1 : 0 ))
PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ -n "${WHEEL_DIR:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-site "$WHEEL_DIR"/*.whl \
    || { echo "gpu.sh: cannot install the wheels in WHEEL_DIR=$WHEEL_DIR (no internet used)" >&2; exit 2; }
  export PYTHONPATH="$PWD:/tmp/gpu-site${PYTHONPATH#$PWD}"
fi
"$PY" - <<'PY' || exit 2
import os, sys
try:
    import jax
except ImportError:
    sys.exit("gpu.sh: jax is not installed; preinstall jax with CUDA or give WHEEL_DIR")
gpus = [d for d in jax.devices() if d.platform == "gpu"]
if not gpus and not os.environ.get("GPU_SH_DRY_RUN"):
    sys.exit(f"gpu.sh: jax {jax.__version__} sees no GPU (devices: {jax.devices()}); install the CUDA build of jaxlib")
print(f"gpu.sh: jax {jax.__version__} on {gpus[0].device_kind if gpus else 'CPU (dry run)'}")
PY
if [ -n "${GPU_SH_DRY_RUN:-}" ]; then
  exec "$PY" benchmarks/run.py --backends numpyro --quick --no-scaling --no-storage "$@" --out "$OUT/dry"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# No scaling / storage sections (CPU questions).  On the H200 a first call (XLA
# compilation with autotuning) took 15-30 s per method for W4, so W4 runs first,
# with the PRNG rows, and W2 after it without them (its rbg rows are in
# benchmarks/measured/gpu-h200-W2.md); 2 timed rounds.
# A GPU step is ~100x cheaper than a CPU one: longer calls keep the slope above launch jitter.
status=0
for spec in W4:500:140:prng W2:1000:90:no-prng; do
  IFS=: read -r wl steps limit prng <<<"$spec"
  extra=(); [ "$prng" = no-prng ] && extra=(--no-prng)
  timeout "$limit" "$PY" benchmarks/run.py --backends numpyro --workloads "$wl" --steps "$steps" --repeats 2 \
    --no-scaling --no-storage "${extra[@]}" "$@" --out "$OUT/$wl" || { echo "gpu.sh: $wl did not finish (exit $?)" >&2; status=1; }
done
exit $status
