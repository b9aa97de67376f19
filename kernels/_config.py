"""Compilation settings shared by every kernel module."""

import os

# Numba's on-disk cache for compiled kernels (GPU_HCLUST_NUMBA_CACHE=0 turns it
# off, e.g. on read-only installs). Saves the JIT warm-up on every new process.
NUMBA_CACHE = os.environ.get("GPU_HCLUST_NUMBA_CACHE", "1") != "0"
