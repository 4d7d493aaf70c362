r"""Kinds for LaTeX names: from declarations, from typography, else from how the expression uses
them; then the notations whose meaning depends on kinds (|A|, A^{-1}, \|x\|) are resolved.

A name's kind is, in this order: its declaration; its typography (bold lower case a vector, bold
or plain capital a matrix); the one kind the expression allows it (in ``(\mathbf{x} - \mu)`` the
name mu must be a vector); else the text syntax's default letter (a-g scalars, h-z vectors) if
the expression allows it, else the simplest kind it allows (in ``\sigma^2 I`` a scalar). Readings
that need no scalar broadcast are preferred: in ``\lambda \|\mathbf{w}\|^2 + c`` the name lambda
is a scalar. When these choices together do not type, the error says what to declare.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from ..errors import MatdiffError
from .parse import Binary, Call, Name, Node, Num, Transpose, Unary, children, post_order
from .types import KIND_DEPENDENT, KIND_WORDS, Decl, default_rank, direction_base, infer

MAX_READINGS = 729  # 3^6: up to six names without a hint are read every way


def type_by_usage(root: Node, decls: dict[str, Decl], source: str) -> tuple[Node, dict[str, Decl]]:
    """The resolved tree and its typed variables."""
    from .latex import LatexName  # latex imports this module lazily

    root = _rebuild(root, lambda node: _identity(node, decls))
    names = {node.name for node in post_order(root) if isinstance(node, LatexName)}
    ranks: dict[str, int | None] = {}
    bases: set[str] = set()  # V of each direction dV (\mathrm{d}V): dV has V's type
    for node in post_order(root):
        base = (direction_base(node.name, names | set(decls))
                if isinstance(node, LatexName) and node.name not in decls else None)
        if base is not None:
            bases.add(base)
            continue
        if isinstance(node, LatexName) and node.name not in ("pi", "eye"):
            hint = _hinted_rank(node)
            ranks[node.name] = hint if ranks.get(node.name) is None else ranks[node.name]
    known = {name: decls[name] for name in (*ranks, *bases) if name in decls}
    known |= {name: _decl(name, rank) for name, rank in ranks.items()
              if name not in decls and rank is not None}
    free = [name for name, rank in ranks.items() if name not in known]
    # every declaration, used or not: its dimension names are taken, and its V types a dV
    chosen = decls | known | _kinds_of_free_names(root, known, free, source)
    infer(root, chosen, source)
    root = _rebuild(root, _meaning)
    return root, infer(root, chosen, source)


def _hinted_rank(node) -> int | None:
    if node.name[0].isupper():
        return 2
    return 1 if node.bold else None


def _decl(name: str, rank: int) -> Decl:
    return Decl(name, (None,) * rank)


def _kinds_of_free_names(root: Node, known: dict[str, Decl], free: list[str],
                         source: str) -> dict[str, Decl]:
    if not free:
        return {}
    defaults = tuple(default_rank(name) for name in free)
    readings = (list(itertools.product(range(3), repeat=len(free)))
                if 3 ** len(free) <= MAX_READINGS else [defaults])
    valid: list[tuple[int, ...]] = []
    for broadcast in (False, True):
        valid = [r for r in readings if _types(root, known, free, r, broadcast)]
        if valid:
            break
    if not valid:  # no reading works: report what is wrong with the default one
        infer(root, known | _reading(free, defaults), source)
        raise AssertionError("unreachable: the default reading typed")
    possible = [{reading[k] for reading in valid} for k in range(len(free))]
    chosen = tuple(_pick(name, p) for name, p in zip(free, possible, strict=True))
    if chosen not in valid:
        unclear = [name for name, p in zip(free, possible, strict=True) if len(p) > 1]
        first = next(node for node in post_order(root)
                     if isinstance(node, Name) and node.name == unclear[0])
        example = dict(zip(free, valid[0], strict=True))
        options = "; ".join(f"{name}: {' or '.join(KIND_WORDS[k] for k in sorted(p))}"
                            for name, p in zip(free, possible, strict=True) if len(p) > 1)
        raise MatdiffError(f"cannot tell what {', '.join(unclear)} "
                           f"{'is' if len(unclear) == 1 else 'are'} ({options})",
                           hint=f"declare {'it' if len(unclear) == 1 else 'them'}, for example "
                           "declare=\"" + "; ".join(
                               f"{name}: {KIND_WORDS[example[name]]}" for name in unclear)
                           + '"', column=first.pos)
    return _reading(free, chosen)


def _pick(name: str, possible: set[int]) -> int:
    """The one kind usage allows; else the default letter's; else the simplest allowed (in
    ``\\sigma^2 I`` sigma cannot be the default vector, and a scalar reads before a matrix)."""
    if len(possible) == 1:
        return next(iter(possible))
    default = default_rank(name)
    return default if default in possible else min(possible)


def _reading(free: list[str], ranks: tuple[int, ...]) -> dict[str, Decl]:
    return {name: _decl(name, rank) for name, rank in zip(free, ranks, strict=True)}


def _types(root: Node, known: dict[str, Decl], free: list[str], ranks: tuple[int, ...],
           broadcast: bool) -> bool:
    try:
        infer(root, known | _reading(free, ranks), None, broadcast=broadcast)
    except MatdiffError:
        return False
    return True


# --- rewriting the tree --------------------------------------------------------------------------

def _identity(node: Node, decls: dict[str, Decl]) -> Node:
    r"""I, \mathbf{I}, \mathbb{I} and I_n are the identity unless declared."""
    if isinstance(node, Name) and (node.name == "I" or node.name.startswith("I_")) \
            and node.name not in decls:
        return Name(pos=node.pos, name="eye")
    return node


def _meaning(node: Node) -> Node:
    """A kind-dependent placeholder replaced by what it means for its (typed) operand."""
    if not (isinstance(node, Call) and node.fn in KIND_DEPENDENT):
        return node
    (arg,) = node.args
    kind = ("matrix" if len(arg.shape) == 2 else "row vector" if arg.row else
            "vector" if arg.shape else "scalar")
    meaning = KIND_DEPENDENT[node.fn][1][kind]
    if meaning == "reciprocal":
        return Binary(pos=node.pos, op="^", left=arg, right=Unary(pos=node.pos, op="-",
                                                                   arg=Num(pos=node.pos, value=1)))
    return Call(pos=node.pos, fn=meaning, args=[arg])


def _rebuild(root: Node, rewrite) -> Node:
    """A copy of the tree with ``rewrite`` applied to every node, children first (no recursion:
    a long sum is a deep tree)."""
    new: dict[int, Node] = {}
    for original in post_order(root):
        kids = [new[id(child)] for child in children(original)]
        node = original
        if isinstance(node, Call):
            node = replace(node, args=kids)
        elif isinstance(node, (Unary, Transpose)):
            node = replace(node, arg=kids[0])
        elif isinstance(node, Binary):
            node = replace(node, left=kids[0], right=kids[1])
        new[id(original)] = rewrite(node)
    return new[id(root)]
