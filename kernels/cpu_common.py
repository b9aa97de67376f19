"""Helpers shared by the CPU kernels: prefetching for the linkage engines, and
the primitives every CPU module uses (condensed index and row base, the
Lance-Williams update, union-find, heap select).

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

from . import cancel, formulas
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



# --------------------------------------------------------------------------
# Primitives shared by the CPU kernels: each written once, here.
# --------------------------------------------------------------------------

_condensed_index_formula = numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")(
    formulas.condensed_index)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def condensed_index(n, i, j):
    """``formulas.condensed_index`` in int64 whatever the callers' integer types.

    The position of the pair (i, j), i != j, in a condensed matrix of n points;
    the casts keep ``n * i`` from overflowing int32 (from n = 46 342) when an
    argument comes from an int32 array.
    """
    return _condensed_index_formula(np.int64(n), np.int64(i), np.int64(j))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def row_base(n, i):
    """Where row i starts in a condensed matrix of n points, offset by the column.

    ``D[row_base(n, i) + j]`` is the pair (i, j) for every j > i: the position
    of (i, i + 1) minus (i + 1), so a loop over j adds one term and needs no
    branch. Also the way down a column: ``D[row_base(n, i) + x]`` is (i, x)
    for i < x. int64 whatever the callers' integer types (see
    ``condensed_index``). Plain njit, not ``inline="always"``: LLVM inlines
    it anyway, and Numba-level inlining made nn_chain ~8 % slower (n = 8000).
    """
    i = np.int64(i)
    # The formula at the diagonal (i, i) is the position of (i, i + 1) minus 1:
    # the same integer, and its "i > j" swap folds away (with j = i + 1 the
    # compiler may keep it, as i + 1 can wrap), so the hot loops get the
    # arithmetic alone.
    return _condensed_index_formula(np.int64(n), i, i) - i


# The Lance-Williams update of the CPU dense engines: scipy's unsquared form
# (``formulas``), so that ties round as in scipy and the tree is scipy's. No CPU
# engine uses the squared form (``formulas.lw_update``: CUDA, ``launch``).
lw_update_scipy_form = numba.njit(nogil=True, cache=NUMBA_CACHE)(formulas.lw_update_scipy_form)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def find(parent, x):
    """Root of ``x`` in the union-find forest ``parent`` (roots point to themselves).

    Path halving: every visited node is re-pointed at its grandparent, which
    keeps the trees flat (amortised near-constant time) without recursion.
    """
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


# A bounded max-heap over (value, index) pairs keeps the p smallest values
# offered to it: the root is the largest kept value, the one a smaller newcomer
# replaces. Ties keep the earlier item (the comparisons below are fixed:
# results that depend on which of equal values is kept must not change).
# _sift_up and _sift_down mirror each other (up past smaller parents, down past
# larger children), so `duplicates` lists them as a pair of the same shape.

@numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")
def _sift_up(val, idx, pos, v):
    """Move the hole at ``pos`` up past every parent smaller than ``v``;
    returns the position where ``v`` belongs."""
    while pos > 0:
        up = (pos - 1) // 2
        if val[up] >= v:
            break
        val[pos] = val[up]
        idx[pos] = idx[up]
        pos = up
    return pos


@numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")
def _sift_down(val, idx, size, v):
    """Move the hole at the root of a heap of ``size`` entries down past every
    child larger than ``v``; returns the position where ``v`` belongs."""
    pos = 0
    while True:
        ch = 2 * pos + 1
        if ch >= size:
            break
        if ch + 1 < size and val[ch + 1] > val[ch]:
            ch += 1
        if val[ch] <= v:
            break
        val[pos] = val[ch]
        idx[pos] = idx[ch]
        pos = ch
    return pos


@numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")
def heap_offer(val, idx, p, i, v):
    """Offer item ``i`` (the i-th offered, counting from 0) with value ``v`` to
    the heap ``val``/``idx`` that keeps the ``p`` smallest values offered."""
    if i < p:
        pos = _sift_up(val, idx, i, v)
    elif v < val[0]:
        pos = _sift_down(val, idx, p, v)
    else:
        return
    val[pos] = v
    idx[pos] = i


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def select_smallest(vals, count, p, out_val, out_idx):
    """The ``p`` smallest of ``vals[:count]`` and their indices, ascending.

    Written to ``out_val[:p]``/``out_idx[:p]`` (1 <= p <= count): a bounded
    max-heap, then heapsort. O(count + p log p) for typical inputs; every
    value left out is >= ``out_val[p - 1]``.
    """
    for i in range(count):
        heap_offer(out_val, out_idx, p, i, vals[i])
    for end in range(p - 1, 0, -1):
        top_v = out_val[0]
        top_i = out_idx[0]
        v = out_val[end]
        iv = out_idx[end]
        pos = _sift_down(out_val, out_idx, end, v)
        out_val[pos] = v
        out_idx[pos] = iv
        out_val[end] = top_v
        out_idx[end] = top_i
