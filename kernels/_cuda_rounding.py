"""CUDA implementation of ``metrics.product``: an explicitly rounded multiply.

NVVM contracts a multiply followed by an add into one fused multiply-add by
default (``-fma=1``), and numba-cuda 0.30 has no option to turn that off. A
multiply with an explicit rounding mode (libdevice ``__nv_dmul_rn``, PTX
``mul.rn.f64``) is never fused, so a dot product summed with it rounds every
product and every partial sum as scipy's (and the CPU kernel's) loop does.
Imported by every CUDA module that compiles ``kernels.metrics``; registering
the overload is its only effect.
"""

from numba.cuda import libdevice
from numba.cuda.extending import overload

from . import metrics


@overload(metrics.product, target="cuda")
def _product_cuda(u, v):
    def impl(u, v):
        return libdevice.dmul_rn(u, v)  # float32 operands are widened (exact)

    return impl
