"""Compile: IR roots become one fast function of keyword arrays, for NumPy, JAX or PyTorch.

The program is planned (:mod:`.plan`) and emitted (:mod:`.emit`) once per binding of the
symbolic sizes, because the best contraction order depends on them, and cached; a call reads
the sizes off its arrays, finds the function and runs it. Several roots (a value and its
gradients) are one program, so everything they share is computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .. import budget
from ..core.ir import Dim, Expr
from ..errors import MatdiffError
from .emit import BACKENDS, Function, build_pair, module_source, parameters
from .plan import lower_program

DEFAULT_SIZE = 100   # where source is written without sizes: the order for mid-sized inputs


class Compiled:
    """callable(**arrays) -> the roots' values (a tuple when there are several).

    A NumPy call whose arguments are already float64 ndarrays (Python floats for scalars) of
    shapes seen before runs the trusted twin of the function straight away: a few attribute
    comparisons and one dictionary lookup. Anything else takes the checked path, which
    converts, validates (a clear MatdiffError) and, once it succeeds, admits those shapes to
    the fast one.
    """

    def __init__(self, roots: Sequence[Expr], shapes: Mapping[str, tuple[Dim, ...]],
                 backend: str = "numpy", name: str = "f", doc: str | Callable[[], str] = ""):
        if backend not in BACKENDS:
            raise MatdiffError(f"unknown backend {backend!r}",
                               hint="use one of " + ", ".join(BACKENDS))
        _require(backend)
        self.roots, self.shapes, self.backend = list(roots), dict(shapes), backend
        self.name, self.doc = name, doc
        self._cache: dict[tuple, Callable] = {}
        # where each symbolic size is read from: the first array that carries it
        self.parameters = parameters(self.roots, self.shapes)
        self._size_sources: list[tuple[str, str, int]] = []
        seen: set[str] = set()
        for name_ in self.parameters:
            for axis, d in enumerate(self.shapes[name_]):
                if isinstance(d, str) and d not in seen:
                    seen.add(d)
                    self._size_sources.append((d, name_, axis))
        # the sizes as one expression: a call's fixed cost is a few attribute reads, not a loop
        items = "".join(f"a[{name!r}].shape[{axis}], " for _, name, axis in self._size_sources)
        self._key: Callable[[Mapping], tuple] = eval(f"lambda a: ({items})")  # noqa: S307
        self._trusted: dict[tuple, Callable] = {}   # the arrays' shapes -> the trusted twin
        self._sizes_trusted: dict[tuple, Callable] = {}
        self._dispatch = _dispatcher(self.parameters, self.shapes, self._trusted,
                                     self._checked_call) if backend == "numpy" else None

    def _dims(self) -> set[str]:
        return {d for shape in self.shapes.values() for d in shape if isinstance(d, str)}

    def function(self, sizes: Mapping[str, int], documented: bool = True) -> Function:
        """The planned function; its docstring (the formula, costly to print) on request."""
        with budget.request():  # keeps the nodes planning builds alive while it runs
            program = lower_program(self.roots, sizes)
        return Function(self.name, program, self.shapes, self._doc() if documented else "")

    def _doc(self) -> str:
        if not callable(self.doc):
            return self.doc
        try:
            return self.doc()
        except MatdiffError as err:     # a value with no printed form still has its code
            return f"{self.name}: (no printed form: {err.message})"

    def bound_sizes(self, sizes: Mapping[str, int] | None = None) -> dict[str, int]:
        """Every symbolic size: as given, else DEFAULT_SIZE."""
        return {d: (sizes or {}).get(d, DEFAULT_SIZE) for d in self._dims()}

    def source(self, sizes: Mapping[str, int] | None = None) -> str:
        """A self-contained module defining the function, planned for ``sizes``."""
        return module_source([self.function(self.bound_sizes(sizes))], self.backend)

    def prepare(self, **arrays) -> Callable:
        """The function for these arrays' sizes, planned and emitted now if it is not yet."""
        return self._prepare(arrays)

    def _prepare(self, arrays: Mapping[str, object]) -> Callable:
        try:
            key = self._key(arrays)
        except (KeyError, AttributeError, IndexError, TypeError):
            key = self._sizes_slowly(arrays)
        fn = self._cache.get(key)
        if fn is None:
            sizes = {d: n for (d, _, _), n in zip(self._size_sources, key)}
            inputs = self.parameters if self._dispatch is not None else None
            fn, trusted = build_pair(self.function(sizes, documented=False), self.backend,
                                     inputs)
            if self.backend == "jax":
                import jax
                fn = jax.jit(fn)
            self._cache[key] = fn
            if trusted is not None:
                self._sizes_trusted[key] = trusted
        return fn

    def __call__(self, **arrays):
        if self._dispatch is not None:
            return self._dispatch(arrays)
        return self._checked_call(arrays)

    def _checked_call(self, arrays: Mapping[str, object]):
        fn = self._prepare(arrays)
        try:
            result = fn(**arrays)
        except ValueError as err:       # the shape checks, in one line
            raise MatdiffError(str(err)) from None
        except TypeError:
            missing = [n for n in self.parameters if n not in arrays]
            if missing:
                raise MatdiffError(f"no value given for variable {missing[0]}",
                                   hint=f"pass {missing[0]}=<array>") from None
            raise
        except Exception as err:
            if type(err).__name__ in ("LinAlgError", "_LinAlgError"):
                raise MatdiffError(f"cannot evaluate: {err} at these values",
                                   hint="the formula needs an invertible (for a posdef "
                                        "variable: positive definite) matrix here") from None
            raise
        if self._dispatch is not None:   # these shapes passed the checks: fast from now on
            import numpy as np
            shapes = tuple(np.shape(arrays[n]) for n in self.parameters if self.shapes[n])
            trusted = self._sizes_trusted.get(self._key_of(arrays))
            if trusted is not None:
                self._trusted[shapes] = trusted
        return result

    def _key_of(self, arrays: Mapping[str, object]) -> tuple:
        try:
            return self._key(arrays)
        except (KeyError, AttributeError, IndexError, TypeError):
            return self._sizes_slowly(arrays)

    def _sizes_slowly(self, arrays: Mapping[str, object]) -> tuple[int, ...]:
        import numpy as np
        key = []
        for _d, name, axis in self._size_sources:
            if name not in arrays:
                raise MatdiffError(f"no value given for variable {name}",
                                   hint=f"pass {name}=<array>")
            shape = np.shape(arrays[name])
            if len(shape) != len(self.shapes[name]):
                raise MatdiffError(f"{name} should have {len(self.shapes[name])} axes, got an "
                                   f"array of shape {shape}")
            key.append(shape[axis])
        return tuple(key)


def _dispatcher(names: Sequence[str], shapes: Mapping[str, tuple[Dim, ...]],
                trusted: Mapping[tuple, Callable], checked: Callable) -> Callable:
    """The NumPy call path, written out for these inputs: every test a comparison of a class,
    a dtype or a shape, no conversion, no loop; anything unusual goes to ``checked``."""
    import numpy as np
    args = [f"a{k}" for k in range(len(names))]
    arrays = [a for a, n in zip(args, names) if shapes[n]]
    scalars = [a for a, n in zip(args, names) if not shapes[n]]
    tests = [f"{a}.__class__ is ndarray and {a}.dtype is f64" for a in arrays]
    tests += [f"{a}.__class__ in scalar" for a in scalars]
    key = "(" + "".join(f"{a}.shape, " for a in arrays) + ")"
    reads = "; ".join(f"{a} = arrays[{n!r}]" for a, n in zip(args, names)) or "pass"
    text = f"""def dispatch(arrays):
    try:
        {reads}
    except KeyError:
        return checked(arrays)
    if {" and ".join(tests) or "True"}:
        fn = trusted.get({key})
        if fn is not None:
            try:
                return fn({", ".join(args)})
            except Exception:   # the checked path says what went wrong, in its words
                pass
    return checked(arrays)
"""
    namespace = {"ndarray": np.ndarray, "f64": np.dtype(np.float64), "trusted": trusted,
                 "checked": checked, "scalar": frozenset({float, np.float64})}
    exec(compile(text, "<matdiff dispatch>", "exec"), namespace)  # noqa: S102
    return namespace["dispatch"]


def _require(backend: str) -> None:
    module = {"numpy": "numpy", "jax": "jax", "torch": "torch"}[backend]
    try:
        __import__(module)
    except ImportError:
        raise MatdiffError(f"the {backend} backend needs {module}",
                           hint=f"pip install 'matdiff[{backend}]'") from None
