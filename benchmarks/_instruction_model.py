"""Instruction-count model of the GPU memory-saving engine: counted work -> projected seconds.

A PROJECTION, not a measurement. ``count_gpu_work.py`` counts what the engine's
host drivers do (pair distances per kernel, launches, host syncs) by emulating
them in NumPy; this module turns those counts into time on a Hopper GPU by
counting the *instructions* each pair costs in the kernels' inner loops, per
hardware pipe, and dividing by each pipe's issue rate. It replaces the earlier
"3 d FP64 operations per pair at the FP64 peak" rule, which was right for the
FP64 pipe of a euclidean pair by coincidence and ignored the shared-memory
loads, the per-pair key and comparison, and the launch and sync overheads.

Instructions per pair (from the source of ``kernels/cuda_vector.py`` and
``kernels/metrics.py``; warp instructions per thread-pair, i.e. per lane):

* Coordinate terms, d per pair (``_chunk_literal``). Each product is an
  explicitly rounded multiply (``metrics.product``: ``mul.rn``, never fused),
  so euclidean/sqeuclidean cost sub + mul + add = 3 FP64 instructions per
  term, cosine/correlation mul + add = 2. The column coordinate is one shared
  load per term and row tile (``sh_c``, broadcast); with micro-tiles of R rows
  per thread one shared load feeds R rows: d / R loads per pair. The row
  coordinate sits in a register for the TILE_C columns of a chunk.
* The key and the list (per pair, after the d terms): ``cluster_distance``
  (ward: the division-free filter ``_ward_loses``, 6 FP64 instructions; the
  exact key, whose double division SASS expands to a reciprocal seed and
  Newton steps (``DIV_FP64``), only for the few pairs that may enter a list;
  single: the square root, counted like a division; average/sqeuclidean: 2
  adds; average/cosine: 1 add and a clamp), ``precedes`` against the list's last entry (2 FP64 compares and
  integer logic), and three broadcast global loads (the column's slot, size,
  extra). Insertions into the list are rare after the first tiles and not
  counted.
* ``fresh_pass`` pairs also read and compare the column's bound (shared,
  ``sh_bw``/``sh_bj``): 2 shared loads and 2 compares more.

Rates (per SM per clock, compute capability 9.0, from the CUDA C++
Programming Guide's arithmetic-instruction throughput table and the Hopper
tuning guide): FP64 add/mul/fma and compares 64 lanes; shared/global load
instructions 32 lanes (one warp instruction); 4 warp schedulers issuing one
warp instruction each (128 lanes). A kernel's time is the largest of its
pipes' times (they overlap), divided by an assumed efficiency (latency,
occupancy, tails; the model says 100 % and ``REALISTIC_EFFICIENCY``). Device:
132 SMs at 1.98 GHz for both the H100 SXM and the H200 (same GH100 die; the
H200 differs in memory, which this compute-bound count does not use).

Overheads: each kernel launch costs ``LAUNCH_S`` of serial device time (a
queued dependent launch on Hopper), each host sync ``SYNC_S`` (a read of a
counter across PCIe/NVLink and the CPU's wake-up). The chain's steps are
grid-synchronised: ``GRID_SYNC_S`` each, two per step.

What it does not model: memory traffic (at d = 32 a tile of 256 rows x 32
columns loads 288 coordinates for 8 192 pairs: ~0.3 B per term, under a
tenth of HBM3's rate at the projected term rate), L1/L2 misses, register
spills (``point_best`` needs 216 registers per thread), partial tiles
(``padded_pairs`` is reported by the count but the model charges the useful
pairs; the padded count is an upper bound the JSON keeps next to it).
"""

from dataclasses import dataclass

SMS = 132
CLOCK_HZ = 1.98e9
FP64_LANES_PER_CLK = 64      # per SM: DADD/DMUL/DFMA/DSETP
LSU_LANES_PER_CLK = 32       # per SM: LDS/LDG (one warp instruction per clock)
ISSUE_LANES_PER_CLK = 128    # per SM: 4 schedulers x 1 warp instruction x 32 lanes
DIV_FP64 = 10                # FP64 instructions of one double division (seed + Newton + fix-up)
REALISTIC_EFFICIENCY = 0.6   # assumed fraction of the pipe rate reached (occupancy, latency, tails)
LAUNCH_S = 3e-6
SYNC_S = 20e-6
GRID_SYNC_S = 2e-6

# FP64 and integer instructions per coordinate term, by the cluster summary's metric.
_TERM_FP64 = {"euclidean": 3, "sqeuclidean": 3, "cosine": 2}
_INT_PER_PAIR = 6            # loop/index arithmetic and the compare's integer tie-break

# FP64 instructions of the key, per method (``formulas.cluster_distance``).
# single: the euclidean square root of ``metrics.metric_finalize`` per pair
# (a DSQRT subroutine, counted like a division). ward: the division-free
# filter ``cuda_vector._ward_loses`` (2 sa sb, sa + sb, t acc, bw s and its
# margin: 5 operations, and the compare); the exact key (with its division)
# only for pairs that may enter a list, a small share after the first tiles.
_KEY_FP64 = {"ward": 6, "average-sqeuclidean": 2, "average-cosine": 3,
             "single": DIV_FP64}
_PRECEDES_FP64 = 2


@dataclass(frozen=True)
class PairCost:
    """Lane instructions of one pair in one kernel, by pipe."""

    fp64: float
    lsu: float
    other: float

    @property
    def issued(self):
        return self.fp64 + self.lsu + self.other


def pair_cost(engine, d, kernel="scan", rows_per_thread=1):
    """Instructions per pair of ``engine`` ("ward", "average-sqeuclidean",
    "average-cosine", "single") at dimension ``d`` in ``kernel`` ("scan" for
    rnn_scan/point_best/chain steps, "fresh" for fresh_pass)."""
    metric = "cosine" if engine == "average-cosine" else "euclidean"
    fp64 = _TERM_FP64[metric] * d + _KEY_FP64[engine] + _PRECEDES_FP64
    lsu = d / rows_per_thread + 3
    other = _INT_PER_PAIR
    if kernel == "fresh":
        fp64 += 2
        lsu += 2
    return PairCost(fp64, lsu, other)


def pair_seconds(cost):
    """Seconds per pair at 100 % of the binding pipe's rate, whole GPU."""
    per_clk = SMS * CLOCK_HZ
    return max(cost.fp64 / (FP64_LANES_PER_CLK * per_clk),
               cost.lsu / (LSU_LANES_PER_CLK * per_clk),
               cost.issued / (ISSUE_LANES_PER_CLK * per_clk))


def binding_pipe(cost):
    """Name of the pipe that bounds ``cost`` ("fp64", "lsu" or "issue")."""
    per_clk = SMS * CLOCK_HZ
    times = {"fp64": cost.fp64 / (FP64_LANES_PER_CLK * per_clk),
             "lsu": cost.lsu / (LSU_LANES_PER_CLK * per_clk),
             "issue": cost.issued / (ISSUE_LANES_PER_CLK * per_clk)}
    return max(times, key=times.get)


def project(engine, d, scan_pairs, fresh_pairs, launches, host_syncs, chain_steps=0,
            rows_per_thread=1):
    """PROJECTED seconds on an H100/H200 for counted work.

    Returns a dict: ``compute_s`` (pipes at 100 %), ``overhead_s`` (launches,
    syncs, grid syncs), ``peak_s`` (their sum), ``realistic_s`` (compute at
    ``REALISTIC_EFFICIENCY`` plus overheads) and ``binding_pipe``.
    """
    scan = pair_cost(engine, d, "scan", rows_per_thread)
    fresh = pair_cost(engine, d, "fresh", rows_per_thread)
    compute = scan_pairs * pair_seconds(scan) + fresh_pairs * pair_seconds(fresh)
    overhead = launches * LAUNCH_S + host_syncs * SYNC_S + 2 * chain_steps * GRID_SYNC_S
    return {
        "compute_s": compute,
        "overhead_s": overhead,
        "peak_s": compute + overhead,
        "realistic_s": compute / REALISTIC_EFFICIENCY + overhead,
        "binding_pipe": binding_pipe(scan),
    }


def assumptions():
    """The model's constants, for a results file."""
    return {
        "what": "instruction-count model (benchmarks/_instruction_model.py): a projection",
        "sms": SMS, "clock_hz": CLOCK_HZ, "fp64_lanes_per_clk": FP64_LANES_PER_CLK,
        "lsu_lanes_per_clk": LSU_LANES_PER_CLK, "issue_lanes_per_clk": ISSUE_LANES_PER_CLK,
        "div_fp64_instructions": DIV_FP64, "realistic_efficiency": REALISTIC_EFFICIENCY,
        "launch_s": LAUNCH_S, "sync_s": SYNC_S, "grid_sync_s": GRID_SYNC_S,
    }
