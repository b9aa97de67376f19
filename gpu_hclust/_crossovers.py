"""Sizes at which ``backend='auto'`` and ``low_memory=None`` change path on a GPU.

One place for the two GPU crossovers, with where each value came from.
``benchmarks/bench_crossover.py`` measures them on a GPU and ``--apply``
rewrites this file from its results (the values and the ``*_SOURCE`` lines);
the CPU crossovers of ``low_memory=None`` live in ``_plan`` with their
measurements.
"""

# Smallest n for which backend='auto' sends NumPy input to the GPU: below it
# the transfer and the launch latency outweigh the work.
AUTO_CUDA_MIN_N = 2048
AUTO_CUDA_SOURCE = "provisional: not measured on a GPU yet (bench_crossover.py measures it)"

# On the GPU, smallest n from which low_memory=None takes the memory-saving
# engine although the dense matrix fits, per method family ("mst" for single,
# "reducible" for ward/average). Empty: not measured, so the GPU takes the
# memory-saving engine only where the matrix does not fit.
GPU_MEMORY_SAVING_MIN_N = {}
GPU_MEMORY_SAVING_SOURCE = "not measured on a GPU yet (bench_crossover.py measures it)"
