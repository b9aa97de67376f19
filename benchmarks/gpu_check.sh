#!/usr/bin/env bash
# The one script to run on a borrowed GPU machine (repo root, ~8 minutes):
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default ./out/gpu_check)
#
# 1. installs the package (pip install --no-deps -e .) and fastcluster from a
#    wheel carried in .whl/ (the machine has no network; see .gitignore),
# 2. runs the GPU tests: pytest -m gpu -x -q,
# 3. benchmarks linkage on the GPU against scipy/fastcluster/our CPU backend,
#    with benchmarks/bench_linkage.py when it is there, else a built-in timing
#    pass (cuda for every method at 10k-100k points, CPU libraries at 10k),
# 4. prints a short summary last.
# Every stage is time-boxed so the whole run ends inside GPU_CHECK_BUDGET_S
# seconds (default 480); a stage that fails is logged and the next one runs.
# GPU_CHECK_K="expr" narrows the tests (pytest -k) for a partial check.
set -uo pipefail

OUT="${OUT:-$PWD/out/gpu_check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
BUDGET="${GPU_CHECK_BUDGET_S:-480}"
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  python3 -c "import sys, numpy, scipy, numba; print(sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__)"
  python3 -m pip list 2>/dev/null | grep -i -E '^(cupy|numba-cuda|cuda-bindings|nvidia-nvvm|nvidia-cuda-nvrtc|fastcluster) '
} >"$OUT/environment.txt" 2>&1
note "device: $(head -2 "$OUT/environment.txt" | tail -1)"

# --- 1. install ---------------------------------------------------------------
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$OUT/install.log" 2>&1 \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1; then
  note "install: pip install -e . ok"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  note "install: pip install -e . FAILED (see install.log); running from the source tree"
fi

# --- 2. GPU tests -------------------------------------------------------------
TEST_S=$(( $(left) / 2 ))
timeout "$TEST_S" python3 -m pytest -m gpu -x -q -p no:cacheprovider --durations=15 \
  ${GPU_CHECK_K:+-k "$GPU_CHECK_K"} tests >"$OUT/pytest_gpu.log" 2>&1
rc=$?
note "pytest -m gpu (rc=$rc, limit ${TEST_S}s): $(grep -E '(passed|failed|error|skipped)' "$OUT/pytest_gpu.log" | tail -1)"

# --- 3. benchmark ---------------------------------------------------------------
BENCH_S=$(( $(left) - 20 ))
if [ -f benchmarks/bench_linkage.py ] && python3 benchmarks/bench_linkage.py --help 2>/dev/null | grep -q -- '--backends'; then
  # CLI of the CPU engineer's script (assumed: --backends/--sizes/--dims/--json).
  timeout "$BENCH_S" python3 benchmarks/bench_linkage.py --backends cuda,cpu,scipy,fastcluster \
    --sizes 10000,20000,50000,100000 --dims 32,384 --json "$OUT/bench.json" \
    >"$OUT/bench.log" 2>&1
  note "bench_linkage.py rc=$? (limit ${BENCH_S}s), rows in bench.json"
else
  GPU_CHECK_DEADLINE_S="$BENCH_S" timeout "$BENCH_S" python3 - "$OUT/timing.json" >"$OUT/timing.log" 2>&1 <<'EOF'
"""Built-in timing pass: seconds per linkage, NumPy in/out (end to end)."""
import json, os, platform, subprocess, sys, time
import numpy as np

deadline = time.time() + float(os.environ["GPU_CHECK_DEADLINE_S"]) - 15
import cupy
import gpu_hclust
from scipy.cluster import hierarchy as sch

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]
rows = []
rng = np.random.default_rng(0)


def timed(fn):
    cupy.cuda.Device().synchronize()
    t = time.perf_counter()
    Z = fn()
    cupy.cuda.Device().synchronize()
    return time.perf_counter() - t, Z


def record(**row):
    rows.append(row)
    print(json.dumps(row), flush=True)


# JIT warm-up (reported separately) on a small problem per method.
Xw = rng.standard_normal((300, 8))
for m in METHODS:
    try:
        s, _ = timed(lambda: gpu_hclust.linkage(Xw, m, backend="cuda"))
        record(kind="first_call", backend="cuda", method=m, n=300, d=8, seconds=s)
    except Exception as exc:
        record(kind="first_call", backend="cuda", method=m, n=300, d=8, error=repr(exc)[:300])

cpu_libs = {"scipy": lambda X, m: sch.linkage(X, m)}
try:
    import fastcluster
    cpu_libs["fastcluster"] = lambda X, m: fastcluster.linkage(X, m)
except ImportError:
    pass
cpu_libs["gpu_hclust-cpu"] = lambda X, m: gpu_hclust.linkage(X, m, backend="cpu")

def pdist_only(X):
    from gpu_hclust import _engine_cuda
    from gpu_hclust._methods import METHODS as TABLE
    from gpu_hclust._validation import validate_linkage_input

    inp = validate_linkage_input(X, TABLE["single"], "euclidean")
    return _engine_cuda.condensed_working_matrix(inp, np.dtype(np.float64), False)


failed = set()
X10 = Z10 = None
for n, d in [(10000, 32), (10000, 384), (20000, 32), (50000, 32), (50000, 384),
             (100000, 32), (100000, 384)]:
    if time.time() > deadline:
        break
    X = rng.standard_normal((n, d))
    try:
        s, D = timed(lambda: pdist_only(X))
        del D
        record(kind="pdist_only", backend="cuda", method="-", n=n, d=d, seconds=s)
    except Exception as exc:
        record(kind="pdist_only", backend="cuda", method="-", n=n, d=d, error=repr(exc)[:300])
    Zs = {}
    for m in METHODS:
        if m in failed or time.time() > deadline:
            continue
        try:
            s, Zs[m] = timed(lambda: gpu_hclust.linkage(X, m, backend="cuda"))
            record(kind="warm", backend="cuda", method=m, n=n, d=d, seconds=s)
        except Exception as exc:
            failed.add(m)
            record(kind="warm", backend="cuda", method=m, n=n, d=d, error=repr(exc)[:300])
    if (n, d) == (10000, 32):
        X10, Z10 = X, Zs
    del X, Zs
    cupy.get_default_memory_pool().free_all_blocks()

# CPU libraries at n = 10 000 only (they take seconds to minutes beyond).
for lib, fn in cpu_libs.items():
    for m in METHODS:
        if X10 is None or time.time() > deadline:
            break
        try:
            t = time.perf_counter()
            Z = fn(X10, m)
            s = time.perf_counter() - t
            same = m in Z10 and bool(np.allclose(Z[:, 2], Z10[m][:, 2], rtol=1e-9)
                                     and (Z[:, [0, 1, 3]] == Z10[m][:, [0, 1, 3]]).all())
            record(kind="warm", backend=lib, method=m, n=10000, d=32, seconds=s, cuda_equal=same)
        except Exception as exc:
            record(kind="warm", backend=lib, method=m, n=10000, d=32, error=repr(exc)[:300])

meta = {
    "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
    "driver": cupy.cuda.runtime.driverGetVersion(),
    "runtime": cupy.cuda.runtime.runtimeGetVersion(),
    "cpu": platform.processor() or platform.machine(),
    "threads": os.cpu_count(),
    "versions": {"numpy": np.__version__, "cupy": cupy.__version__,
                 "gpu_hclust": gpu_hclust.__version__},
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
}
json.dump({"meta": meta, "rows": rows}, open(sys.argv[1], "w"), indent=1)
EOF
  note "built-in timing rc=$? (limit ${BENCH_S}s), rows in timing.json"
fi

# --- 4. summary ------------------------------------------------------------------
note "--- failures (pytest) ---"
grep -E '^(FAILED|ERROR)|Error' "$OUT/pytest_gpu.log" | head -8 | tee -a "$SUMMARY"
if [ -f "$OUT/timing.log" ]; then
  note "--- seconds per linkage (cuda warm; CPU libraries at n=10000, d=32) ---"
  python3 - "$OUT/timing.log" <<'EOF' | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    val = f"{r['seconds']:.3f}s" if "seconds" in r else "ERROR " + r.get("error", "")[:120]
    eq = "" if "cuda_equal" not in r else f" same-as-cuda={r['cuda_equal']}"
    print(f"{r['kind']:10s} {r['backend']:14s} {r['method']:9s} n={r['n']:6d} d={r['d']:3d} {val}{eq}")
EOF
fi
note "total $(( $(date +%s) - T0 ))s"
