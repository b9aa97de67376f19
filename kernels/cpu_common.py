"""Helpers shared by the CPU linkage kernels (cpu_mst, cpu_nnchain, cpu_generic).

Reading down a column of the condensed matrix misses the cache on every entry
(the stride is a whole row); the kernels issue software prefetches
``PREFETCH_AHEAD`` entries ahead of such reads.

Every long kernel takes a control array (``cancel.py``): it writes merges done
into ``control[DONE]`` and stops early once :func:`cancelled` sees
``control[CANCEL]`` set by the thread waiting for it (Ctrl-C).
"""

import numba
import numpy as np
from llvmlite import binding as _llvm_binding
from llvmlite import ir as _ir
from numba import types as _types
from numba.core import cgutils as _cgutils
from numba.extending import intrinsic as _intrinsic

from . import cancel
from ._config import NUMBA_CACHE

# Column entries fetched this many iterations before they are read (32: 1.5x,
# 64: 1.75x, 128: no better than 64 on nn_chain at n = 10 000).
PREFETCH_AHEAD = 64
# LLVM >= 15 uses opaque pointers, which changed the intrinsic's mangled name.
_PREFETCH_NAME = "llvm.prefetch.p0" if _llvm_binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@_intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load ``arr[idx]`` into cache (read, high locality).

    A hint only: no fault for any index, no effect on results. Compiles to
    LLVM's ``llvm.prefetch``.
    """
    sig = _types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = _cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                        wraparound=False, boundscheck=False)
        i8p = _ir.IntType(8).as_pointer()
        i32 = _ir.IntType(32)
        fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
        fn = _cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_NAME)
        # rw = 0 (read), locality = 3 (keep in all levels), cache type = 1 (data)
        builder.call(fn, [builder.bitcast(ptr, i8p), _ir.Constant(i32, 0),
                          _ir.Constant(i32, 3), _ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def lower_bound(live, m, x):
    """First position p < m with live[p] >= x (live sorted ascending)."""
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        if live[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_intrinsic
def _load_relaxed(typingctx, arr, idx):
    """``arr[idx]`` read as an atomic (relaxed) load: another thread writes it,
    so the compiler must not keep it in a register across loop iterations."""
    sig = arr.dtype(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = _cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                        wraparound=False, boundscheck=False)
        return builder.load_atomic(ptr, "monotonic", aryty.dtype.bitwidth // 8)

    return sig, codegen


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def cancelled(control):
    """True once the control array's cancel slot is set (one load per call).

    A one-element array (a bare progress counter) is never cancelled.
    """
    return control.shape[0] > cancel.CANCEL and _load_relaxed(control, cancel.CANCEL) != 0


def merge_counter(counter):
    """The int64 control array a kernel writes merges into and polls for Ctrl-C.

    ``counter`` when given (a control array, or a one-element progress
    counter), else the current phase's control (``cancel.current``: a fresh
    array when no phase runs). Engines always pass an array so that each
    kernel has one compiled signature.
    """
    return cancel.current() if counter is None else counter


# Raised by the CPU kernels when a scan finds no finite candidate left (scipy
# raises ValueError in the same place for centroid/median).
NO_FINITE_CANDIDATE = (
    "linkage: no finite distance is left between the remaining clusters "
    "(a Lance-Williams update overflowed to inf or gave NaN; ward, centroid and median "
    "square the distances, which overflows above about 1e154). Divide the data or the "
    "distances by a power of two (e.g. y / 2.0**600): the tree is unchanged and the "
    "heights scale by the same factor."
)
