"""The EM pass of :func:`kernels.accumulate` on PyTorch or JAX: the same quadratic features,
the same two products per block, so the same code runs on a GPU where the tensors live there.

The parameters' quadratic form (A, B, c) is computed once per iteration in NumPy float64
(K small matrices) and moved to the data's device and dtype; the data stays where it is (a
tensor the caller put on its device, or the NumPy array wrapped once). The statistics are summed
in float64 and returned as NumPy ``Stats``, so the M-step is the one the NumPy path runs.
On a CPU, PyTorch's MKL runs the skinny products (K rows) faster than OpenBLAS (measured in
benchmarks/bench_em.py); on a GPU blocks are large, as the device has no cache to fit.
"""

from __future__ import annotations

import numpy as np

from ..errors import MatdiffError
from .kernels import BLOCK_BYTES, Params, Stats, feature_count, quadratic_form, underflow

BACKENDS = ("numpy", "torch", "jax")
DEVICE_BLOCK_BYTES = 256 << 20   # a GPU block: large enough to fill the device


def require(backend: str) -> None:
    if backend not in BACKENDS:
        raise MatdiffError(f"unknown EM backend {backend!r}",
                           hint="use one of " + ", ".join(BACKENDS))
    if backend == "numpy":
        return
    try:
        __import__(backend)
    except ImportError:
        raise MatdiffError(f"the {backend} backend needs {backend}",
                           hint=f"pip install 'matdiff[{backend}]'") from None


def as_device_array(X, backend: str):
    """X as the backend's array (no copy for a CPU array where the backend allows)."""
    if backend == "torch":
        import torch
        return X if torch.is_tensor(X) else torch.from_numpy(np.asarray(X))
    import jax
    import jax.numpy as jnp
    if np.asarray(X).dtype == np.float64 and not jax.config.jax_enable_x64:
        raise MatdiffError("float64 data on the jax backend needs jax's 64-bit mode",
                           hint="jax.config.update('jax_enable_x64', True), or pass float32 "
                                "data")
    return jnp.asarray(X)


def _rows_per_block(X, d: int, width: int, on_gpu: bool) -> int:
    budget = DEVICE_BLOCK_BYTES if on_gpu else BLOCK_BYTES
    return max(256, budget // (X.dtype.itemsize * (width + d)))


def _upper_pairs(d: int):
    rows, cols = np.triu_indices(d)
    return rows, cols


# -- PyTorch --------------------------------------------------------------------------------

def torch_accumulate(X, p: Params, shift: np.ndarray) -> Stats:
    """kernels.accumulate for a torch tensor X (N, d) on any device."""
    import torch
    kind = p.kind
    K, d = p.means.shape
    dev, dt = X.device, X.dtype

    def put(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=dev)

    A, B, c = (put(a.T) for a in quadratic_form(p, shift))       # (K|1, F), (K, d), (K,)
    c = c[:, None]
    g = put(shift)[None, :]
    F = feature_count(d, kind)
    tied = kind == "tied"
    AB = None if tied else torch.cat([A, B], dim=1)
    step = _rows_per_block(X, d, F, dev.type != "cpu")
    f64 = torch.float64
    nk = torch.zeros(K, dtype=f64, device=dev)
    first = torch.zeros(K, d, dtype=f64, device=dev)
    second = torch.zeros(1 if tied else K, F, dtype=f64, device=dev)
    total = torch.zeros((), dtype=f64, device=dev)
    z = torch.empty(F + d, min(step, X.shape[0]), dtype=dt, device=dev)
    floor = underflow(dt)
    for start in range(0, X.shape[0], step):
        block = X[start:start + step]
        n = block.shape[0]
        zb = z[:, :n]
        phi, t = zb[:F], zb[F:]
        torch.sub(block.T, g.T, out=t)
        if kind in ("full", "tied"):
            row = 0
            for j in range(d):      # row j of the triangle: t_j * t_j..d (no gathered copies)
                torch.mul(t[j], t[j:], out=phi[row:row + d - j])
                row += d - j
        elif kind == "diag":
            torch.mul(t, t, out=phi)
        else:
            torch.sum(t * t, dim=0, keepdim=True, out=phi)
        log_p = B @ t + A @ phi if tied else AB @ zb
        log_p += c
        top = log_p.max(dim=0).values
        r = log_p.sub_(top).clamp_(min=floor).exp_()
        norm = r.sum(dim=0)
        r /= norm
        total += (norm.log() + top).sum(dtype=f64)
        nk += r.sum(dim=1, dtype=f64)
        if tied:
            first += (r @ t.T).to(f64)
            second += phi.sum(dim=1, dtype=f64)[None, :]
        else:
            moments = (zb @ r.T).to(f64)                       # (F + d, K)
            second += moments[:F].T
            first += moments[F:].T
    out = [a.cpu().numpy() for a in (nk, first, second)]
    return Stats(X.shape[0], float(total), *out)


# -- JAX ------------------------------------------------------------------------------------

def jax_accumulate(X, p: Params, shift: np.ndarray) -> Stats:
    """kernels.accumulate for a jax array X (N, d): one jitted function per block shape."""
    import jax.numpy as jnp
    kind = p.kind
    K, d = p.means.shape
    dt = X.dtype
    A, B, c = (jnp.asarray(np.ascontiguousarray(a.T), dtype=dt)
               for a in quadratic_form(p, shift))
    g = jnp.asarray(shift, dtype=dt)
    on_gpu = any(dev.platform != "cpu" for dev in X.devices())
    step = _rows_per_block(X, d, feature_count(d, kind), on_gpu)
    block_stats = _jax_block(kind, d)
    parts = [block_stats(X[start:start + step], A, B, c, g)
             for start in range(0, X.shape[0], step)]
    total, nk, first, second = (np.sum([np.asarray(part[k], dtype=np.float64) for part in parts],
                                       axis=0) for k in range(4))
    return Stats(X.shape[0], float(total), nk, first, second)


_JAX_BLOCKS: dict = {}


def _jax_block(kind: str, d: int):
    key = (kind, d)
    if key not in _JAX_BLOCKS:
        import jax
        import jax.numpy as jnp
        rows, cols = _upper_pairs(d)
        tied = kind == "tied"

        def block_stats(block, A, B, c, g):
            t = (block - g).T
            if kind in ("full", "tied"):
                phi = t[rows] * t[cols]
            elif kind == "diag":
                phi = t * t
            else:
                phi = jnp.sum(t * t, axis=0, keepdims=True)
            log_p = B @ t + A @ phi + c[:, None]
            top = jnp.max(log_p, axis=0)
            r = jnp.exp(jnp.maximum(log_p - top, underflow(block.dtype)))
            norm = jnp.sum(r, axis=0)
            r = r / norm
            wide = jnp.promote_types(block.dtype, jnp.float64) if jax.config.jax_enable_x64 \
                else block.dtype
            total = jnp.sum((jnp.log(norm) + top).astype(wide))
            nk = jnp.sum(r.astype(wide), axis=1)
            first = (r @ t.T).astype(wide)
            second = jnp.sum(phi, axis=1)[None, :] if tied else r @ phi.T
            return total, nk, first, second.astype(wide)

        _JAX_BLOCKS[key] = jax.jit(block_stats)
    return _JAX_BLOCKS[key]


ACCUMULATE = {"torch": torch_accumulate, "jax": jax_accumulate}
