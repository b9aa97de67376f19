#!/usr/bin/env bash
# The one script to run on a borrowed GPU machine (repo root, one call of at most 8 minutes):
#
#   bash benchmarks/gpu_check.sh                       # default phases
#   GPU_CHECK_PHASES=tests,D bash benchmarks/gpu_check.sh
#   GPU_CHECK_PHASES=T bash benchmarks/gpu_check.sh         # issue 12's whole target table
#   GPU_CHECK_PHASES=cuhc bash benchmarks/gpu_check.sh      # beside cuhc 0.1.0
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # print the plan, run nothing
#
# Results (JSON per phase, logs, environment with device name, versions and commit,
# summary.txt) go to $OUT, default benchmarks/results/gpu-check-<device>-<date>/.
#
# 1. installs the package (pip install --no-deps -e .) and the wheels carried in
#    .whl/ (gitignored; the machine has no network): fastcluster, and numpy 2.4
#    because numba-cuda 0.30.4 fails to compile any kernel on numpy 2.5.
# 2. tests: pytest -m gpu -x -q (GPU_CHECK_K="expr" narrows it, pytest -k).
# 3. benchmarks, every row checked (benchmarks/README.md, "Checks"): each row prints
#    ok / MISMATCH / unchecked and names its reference: scipy where it holds the
#    case (a timed row or one untimed call up to --ref-max-n), else our CPU engine
#    at the same n (one untimed call), itself compared with scipy at a smaller n
#    in the same run. Sizes are chosen so that every default row has a reference
#    inside the budget; the opt-in phases say which rows cannot be checked.
#    default phases (sizes from the H100 run of 2026-11-25: our CPU engine took
#    1.1-1.6 s per method at 10k on 16 cores, scipy 1.7-5 s; not yet re-timed):
#      A     dense, cuda + cuda-device, all methods, n = 20k x 32 (our CPU engine, one
#            call per method; validated against scipy at n = 2000)
#      D     memory-saving, cuda, single and ward, n = 100k x 32 (our CPU engine, one call)
#      B     dense, n = 10k x 32, single/complete/average/ward: cuda, cuda-device, our
#            cpu backend, scipy, fastcluster (scipy is the reference)
#    opt-in (GPU_CHECK_PHASES=...; each alone fits a call, together they do not):
#      C     dense, cuda-device at d = 384, n = 10k (scipy) and 30k (our CPU)
#      D384  memory-saving, cuda, average-cosine, n = 20k x 384 (our CPU engine)
#      A50   dense, cuda + cuda-device, all methods at 50k (our CPU engine, 10 GB per call)
#      A100  dense, cuda-device, ward/single/average at 100k (our CPU, 40 GB per call)
#      D1M   memory-saving, cuda, single and ward at 1e6 x 32: no reference fits,
#            the rows print "unchecked" (the engine is checked at 100k by phase D)
#      T     issue 12's whole target table in one call (GPU_CHECK_PHASES=T; the tests
#            need a call of their own; with tests,T they get GPU_CHECK_TEST_S, default
#            90 s, and T the rest), five sub-phases, each also selectable alone:
#        T.dense  dense, cuda-device: ward and average at 100k x 32, Gaussian and the
#                 growing-gap line (_adversarial.py), and the same at 5000
#        T.ms32   memory-saving, cuda: single and ward at 1e6 x 32, and at 10k
#        T.ms384  memory-saving, cuda: average-cosine at 1e6 x 384, and at 5000 (scipy's
#                 single-threaded cosine pdist at 10k x 384 alone takes tens of seconds)
#            No reference fits at 100k (dense CPU: 40 GB and minutes) or 1e6: each
#            big row is "checked-smaller-n": the same engine, method, data and d
#            equal to scipy at the small n of the same call (ids exact, heights
#            rtol 1e-10), plus its own full-n invariants (valid linkage, n - 1
#            merges, sizes add up, heights non-decreasing); it stays "unchecked"
#            (or MISMATCH) otherwise, never "ok". Rows of 1e6 take as many samples
#            as fit --sample-budget-s (one or two: no median, the samples listed).
#        T.cuhc   cuhc 0.1.0 (float32) and ours64 at cuhc's published sizes below 1e6
#                 (ward 20k/100k, single/complete/average 20k), checked at 5000
#        T.cuhc1M cuhc alone at 1e6 (ward, single): ours at 1e6 are T.ms32's rows
#            The summary prints the target table (_common.TARGETS): "met" only
#            for a checked row within its target (vs cuhc: strictly faster).
#      X     bench_crossover.py: the GPU crossovers of backend='auto' (cpu vs cuda,
#            n = 500..16000) and low_memory=None (dense vs memory-saving, 20k..100k),
#            every row checked; apply with bench_crossover.py --apply (off the device)
#      cuhc  bench_cuhc.py: cuhc 0.1.0 (float32) beside ours (float64 and float32)
#            at cuhc's published sizes (ward 20k/100k/1e6, single 20k/1e6,
#            complete/average 20k), all checked against scipy at 10k; cuhc comes
#            from .whl/cuhc-*.whl (built off the device for sm_90), else is built
#            there from .whl/cuhc-0.1.0.tar.gz with CMake. One call of its own.
# 4. prints a summary: per phase the count of ok / MISMATCH / unchecked rows.
# Every stage is time-boxed so the whole run ends inside GPU_CHECK_BUDGET_S seconds
# (default 480); a stage that fails is logged and the next one runs.
set -uo pipefail

PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY_RUN:-0}"
BUDGET="${GPU_CHECK_BUDGET_S:-480}"
PHASES=",${GPU_CHECK_PHASES:-tests,A,D,B},"
# want NAME: NAME or its group (T for T.dense) was asked for
want() { [[ "$PHASES" == *",$1,"* || "$PHASES" == *",${1%%.*},"* ]]; }
T0=$(date +%s)
# a dry run spends each stage's whole limit on paper, so its plan shows the
# limits a real run gets when every stage runs to its limit (15 s for installing)
DRY_SPENT=0
[ "$DRY" = 1 ] && DRY_SPENT=15
left() { echo $(( BUDGET - ($(date +%s) - T0) - DRY_SPENT )); }
exec 3>&1  # the terminal, for the dry run's plan lines

device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
slug=$(echo "${device:-no-gpu}" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-|-$//g')
OUT="${OUT:-$PWD/benchmarks/results/gpu-check-$slug-$(date +%Y-%m-%d)}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
# run LIMIT CMD...: time-boxed, or only printed in a dry run
run() {
  local limit=$1; shift
  if [ "$DRY" = 1 ]; then
    echo "DRY-RUN (limit ${limit}s): $*" | tee -a "$SUMMARY" >&3
    DRY_SPENT=$(( DRY_SPENT + limit ))
    return 0
  fi
  timeout -k 5 "$limit" "$@"
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
g() { git -C "$ROOT" "$@" 2>/dev/null; }
commit=$(g rev-parse HEAD || echo unknown)
dirty=unknown
if [ "$(g rev-parse --is-inside-work-tree)" = true ]; then
  if [ -n "$(g status --porcelain --untracked-files=no)" ]; then dirty=yes; else dirty=no; fi
fi
{ echo "device: ${device:-none (nvidia-smi not found)}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1
  echo "commit: $commit (tracked files modified: $dirty)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "$PY" -c "import sys, numpy, scipy, numba; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__)"
  "$PY" -m pip list 2>/dev/null | grep -i -E '^(cupy|numba-cuda|cuda-bindings|nvidia-nvvm|nvidia-cuda-nvrtc|fastcluster|cuhc) '
} >"$OUT/environment.txt" 2>&1
note "device: ${device:-none}; commit $commit (modified: $dirty); phases ${PHASES//,/ }"

# --- 1. install ---------------------------------------------------------------
if [ "$DRY" != 1 ]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >"$OUT/install.log" 2>&1 \
      && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # dask-cuda for the gpu-marked Dask test (wheels in .whl/dask, Python 3.12):
  # dask and its pure dependencies resolved normally; dask-cuda itself without
  # its dependencies, so that its cuda-core pin cannot replace the device's
  # CUDA Python stack under numba-cuda and CuPy.
  if want tests && [ -d .whl/dask ]; then
    if "$PY" -m pip install -q --no-index --find-links .whl/dask "dask[distributed]==2026.7.1" \
         pandas nvidia-ml-py >>"$OUT/install.log" 2>&1 \
       && "$PY" -m pip install -q --no-index --no-deps --find-links .whl/dask \
         "dask-cuda==26.10.0" "rapids-dask-dependency==26.10.0" >>"$OUT/install.log" 2>&1; then
      note "install: dask-cuda 26.10.0 from .whl/dask"
    else
      note "install: dask-cuda from .whl/dask FAILED (install.log): its gpu test skips"
    fi
  fi
  if "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1; then
    note "install: pip install -e . ok"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    note "install: pip install -e . FAILED (see install.log); running from the source tree"
  fi
fi

# --- 2. GPU tests -------------------------------------------------------------
if want tests; then
  TEST_S=$(( $(left) / 3 ))
  # with the one-call phases the tests get a fixed share, the table the rest
  if want T || want cuhc; then TEST_S=${GPU_CHECK_TEST_S:-90}; fi
  run "$TEST_S" "$PY" -m pytest -m gpu -x -q -p no:cacheprovider --durations=15 \
    ${GPU_CHECK_K:+-k "$GPU_CHECK_K"} tests >"$OUT/pytest_gpu.log" 2>&1
  note "pytest -m gpu (rc=$?, limit ${TEST_S}s): $(grep -E '(passed|failed|error|skipped)' "$OUT/pytest_gpu.log" 2>/dev/null | tail -1)"
fi

# --- 3. benchmarks ----------------------------------------------------------------
# phase NAME SHARE-OF-REMAINING-PERCENT SCRIPT ARGS...: JSON in $OUT/bench_NAME.json
phase() {
  local name=$1 share=$2 script=$3; shift 3
  want "$name" || return 0
  local limit=$(( ($(left) - 15) * share / 100 ))
  if [ "$limit" -lt 30 ]; then note "bench $name: skipped (no time left)"; return; fi
  echo "=== phase $name: $script $* (limit ${limit}s)" >>"$OUT/bench.log"
  # the script's own per-worker limit, inside the phase's: a slow case is
  # recorded as an error row instead of the whole phase being killed
  local wl=$(( limit > 60 ? limit - 20 : limit ))
  local out=(--json "$OUT/bench_$name.json" --case-timeout "$wl")
  case "$script" in
    bench_lowmem.py|bench_cuhc.py) out=(--out "$OUT/bench_$name.json" --timeout "$wl") ;;
  esac
  run "$limit" "$PY" "benchmarks/$script" "$@" "${out[@]}" >>"$OUT/bench.log" 2>&1
  note "bench $name rc=$? (limit ${limit}s): $script $*"
}
DENSE=(--repeat 3 --isolate impl --validate-n 2000)
LOWMEM=(--impls cuda --repeat 3 --scipy-max-n 5000 --validate-n 2000)
# in this order; each phase gets a share of the time left (the last one all of it)
phase A 35 bench_linkage.py --backends cuda --sizes 20000 --dims 32 \
  --ref-max-n 5000 --cpu-ref-max-n 20000 "${DENSE[@]}"
phase D 50 bench_lowmem.py --sizes 100000 --dims 32 --pairs single:euclidean,ward:euclidean \
  --cpu-ref-max-n 100000 "${LOWMEM[@]}"
phase B 90 bench_linkage.py --backends cuda,cpu,scipy,fastcluster --sizes 10000 --dims 32 \
  --methods single,complete,average,ward --cpu-max-n 10000 "${DENSE[@]}"
phase C 90 bench_linkage.py --backends cuda-device --sizes 10000,30000 --dims 384 \
  --methods single,average,ward --ref-max-n 10000 --cpu-ref-max-n 30000 "${DENSE[@]}"
phase D384 90 bench_lowmem.py --sizes 20000 --dims 384 --pairs average:cosine \
  --cpu-ref-max-n 20000 "${LOWMEM[@]}"
phase A50 90 bench_linkage.py --backends cuda --sizes 50000 --dims 32 \
  --ref-max-n 0 --cpu-ref-max-n 50000 "${DENSE[@]}"
phase A100 90 bench_linkage.py --backends cuda-device --sizes 100000 --dims 32 \
  --methods ward,single,average --ref-max-n 0 --cpu-ref-max-n 100000 "${DENSE[@]}"
phase D1M 90 bench_lowmem.py --sizes 1000000 --dims 32 --pairs single:euclidean,ward:euclidean \
  --cpu-ref-max-n 0 "${LOWMEM[@]}"

# T: issue 12's whole target table in one call (GPU_CHECK_PHASES=T, no tests:
# they have a call of their own). Order: our targets first, cuhc beside them
# last. Expected (projections, not measurements; benchmarks/_instruction_model.py
# on results/gpu-work-count.json): T.dense 40-90 s (ward 100k was 1.05 s per
# call on an H100; 8 timed cases + JIT; growing-gap rows bounded by the case
# timeout); T.ms32 80-130 s (single and ward 1e6 x 32 at 6-15 s per call);
# T.ms384 the average-cosine 1e6 x 384 row, 60-110 s (its 60 s target is at
# risk; a timeout is an ERROR row: not met); T.cuhc cuhc and ours64 at cuhc's
# published sizes below 1e6 (dense for ours); T.cuhc1M cuhc alone at 1e6 (our
# 1e6 rows are T.ms32's), one sample each.
if want T; then
  note "plan T (projections, not measurements): T.dense 40-90 s, T.ms32 80-130 s," \
       "T.ms384 60-110 s (or its limit), T.cuhc and T.cuhc1M the rest"
fi
TMS=(--impls cuda --scipy-max-n 10000 --cpu-ref-max-n 0 --repeat 3)
phase T.dense 18 bench_linkage.py --backends cuda-device --sizes 5000,100000 --dims 32 \
  --methods ward,average --data gaussian,growing_gap --low-memory false --ref-max-n 5000 \
  --cpu-max-n 0 --cpu-ref-max-n 0 --repeat 3 --isolate case
phase T.ms32 30 bench_lowmem.py --sizes 10000,1000000 --dims 32 \
  --pairs single:euclidean,ward:euclidean --sample-budget-s 25 "${TMS[@]}"
phase T.ms384 40 bench_lowmem.py --sizes 5000,1000000 --dims 384 --pairs average:cosine \
  --sample-budget-s 1 --impls cuda --scipy-max-n 5000 --cpu-ref-max-n 0 --repeat 3

# cuhc: needs cuhc importable; the carried wheel was built for sm_90 off the
# device; if it does not load, build the library from the carried sdist here.
if { want cuhc || want T.cuhc; } && [ "$DRY" != 1 ]; then
  if ! "$PY" -c "import cuhc" >>"$OUT/install.log" 2>&1; then
    src=$(ls .whl/cuhc-*.tar.gz 2>/dev/null | head -1)
    if [ -n "$src" ]; then
      rm -rf /tmp/cuhc-src && mkdir -p /tmp/cuhc-src \
        && tar xzf "$src" -C /tmp/cuhc-src --strip-components=1 \
        && timeout 300 cmake -S /tmp/cuhc-src -B /tmp/cuhc-build -DCMAKE_CUDA_ARCHITECTURES=90 \
             -DCMAKE_BUILD_TYPE=Release >>"$OUT/install.log" 2>&1 \
        && timeout 300 cmake --build /tmp/cuhc-build -j "$(nproc)" --target cuhc \
             >>"$OUT/install.log" 2>&1 \
        && export PYTHONPATH="/tmp/cuhc-src/python${PYTHONPATH:+:$PYTHONPATH}"
    fi
  fi
  if "$PY" -c "import cuhc" >>"$OUT/install.log" 2>&1; then
    note "cuhc: importable ($("$PY" -c 'import cuhc; print(cuhc.__file__)'))"
  else
    note "cuhc: NOT importable (no wheel, no sdist, or the build failed: install.log);" \
         "its rows are ERROR"
  fi
fi
phase T.cuhc 50 bench_cuhc.py --impls cuhc,ours64 --check-n 5000 --sample-budget-s 3 \
  --cases ward:20000,ward:100000,single:20000,complete:20000,average:20000
phase T.cuhc1M 95 bench_cuhc.py --impls cuhc --check-n 5000 --sample-budget-s 1 \
  --cases ward:1000000,single:1000000
phase cuhc 95 bench_cuhc.py --check-n 10000 --sample-budget-s 5

# X: the GPU crossovers of backend='auto' and low_memory=None (bench_crossover.py;
# JSON in $OUT/crossover.json; then, in the repository, not on the device:
# python benchmarks/bench_crossover.py --apply <that JSON>, and commit both).
if want X; then
  limit=$(( $(left) - 15 ))
  echo "=== phase X: bench_crossover.py (limit ${limit}s)" >>"$OUT/bench.log"
  run "$limit" "$PY" benchmarks/bench_crossover.py --out "$OUT/crossover.json" \
    --timeout $(( limit / 10 > 30 ? limit / 10 : 30 )) >>"$OUT/bench.log" 2>&1
  note "bench X rc=$? (limit ${limit}s): $(grep '^recommendation' "$OUT/bench.log" | tail -1)"
fi

# --- 4. summary ------------------------------------------------------------------
note "--- failures (pytest) ---"
grep -E '^(FAILED|ERROR)|Error' "$OUT/pytest_gpu.log" 2>/dev/null | head -8 | tee -a "$SUMMARY"
note "--- benchmark checks per phase (every row: ok / MISMATCH / checked-smaller-n / unchecked) ---"
if [ "$DRY" != 1 ]; then
  "$PY" - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import glob, json, os, sys
names = ("ok", "MISMATCH", "checked-smaller-n", "unchecked")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.json"))):
    rows = json.load(open(path))["results"]
    count = {s: sum(r.get("check") == s for r in rows) for s in names}
    print(f"{os.path.basename(path)}: {len(rows)} rows: "
          + ", ".join(f"{count[s]} {s}" for s in names))
    for r in rows:
        if r.get("check") != "ok":
            print(f"   {r.get('check')}: {r['impl']} n={r['n']} d={r['d']} {r['method']} "
                  f"{r.get('data', '')} [{r.get('role')}] {r.get('check_detail', '')}")
EOF
fi
if want T; then
  note "--- issue 12 target table (met = checked and within target) ---"
  "$PY" - "$OUT" "$ROOT/benchmarks" "$DRY" <<'EOF' | tee -a "$SUMMARY"
import json, os, sys
sys.path.insert(0, sys.argv[2])
from _common import target_table
def rows(name):
    path = os.path.join(sys.argv[1], name)
    if sys.argv[3] == "1" or not os.path.exists(path):
        return None
    return json.load(open(path))["results"]
print("\n".join(target_table(rows)))
EOF
fi
grep -E 'WRONG RESULT|raised or timed out' "$OUT/bench.log" 2>/dev/null | tee -a "$SUMMARY"
note "total $(( $(date +%s) - T0 ))s; results in $OUT"
