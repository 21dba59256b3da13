"""Node pools: numpy rows standing in for a kmem_cache of kernel nodes, and
the memory budget every pool of one tracker shares.

Every tree emulated here keeps its nodes as rows of numpy arrays, one array
per node field: the XArray's 576-B ``xa_node`` (:mod:`trackers.xa`), the
IDA's 128-B ``struct ida_bitmap`` (:mod:`trackers.ida`) and the maple
tree's 256-B ``maple_range_64`` node (:mod:`trackers.maple`).  This module
is the one pool type they all use.

The budget (docs/CONTRACT.md: "a tracker that would not fit its memory
budget refuses to build with a clear error that names the bytes it needs and
the budget") is per tracker, not per pool: :class:`HostBudget` is the account
and every :class:`NodePool` of one tracker registers with the same one (the
``kvm`` tracker has two XArrays per TD; the ``ida`` an XArray and its
bitmaps).  Invariants:

* a pool grows only through :meth:`HostBudget.reserve`, which adds up the
  bytes *every* pool of the tracker would hold after the growth and checks
  them against the budget *before* it allocates anything
  (:func:`trackers.base.check_budget`, a :class:`MemoryBudgetError` naming
  the bytes and the budget).  A refused update therefore leaves every pool as
  it was, and ``HostBudget.held_bytes() <= budget_bytes`` after any reserve;
* growth is by half the pool or a quarter of the need, whichever is less,
  and never past what the budget leaves;
* rows in use are the owner's business: the compiled code of each tree keeps
  its own free list and high mark; a pool copies all its rows when it grows.

What is and is not faithful: a pool holds *host* bytes (the numpy rows plus a
few fixed bookkeeping arrays); what a kernel would allocate (modeled bytes,
slab packing of 7 xa_nodes per 4 KiB page) comes from :mod:`trackers.kernel`
and is counted by the trees.  Transient buffers of one call (sorted copies of
the input, scan batches) are not counted against the budget.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .base import check_budget

#: one node field: (dtype, shape of one row's value, fill of a new row)
FieldSpec = tuple[np.dtype | type, tuple[int, ...], int]


class HostBudget:
    """The host bytes one tracker may hold, shared by all its node pools."""

    def __init__(self, budget_bytes: int, what: str):
        self.budget_bytes = int(budget_bytes)
        self.what = what
        self.pools: list[NodePool] = []

    def held_bytes(self) -> int:
        """Bytes every registered pool holds now."""
        return sum(p.host_bytes() for p in self.pools)

    def release(self, pool: "NodePool") -> None:
        """Stop counting a pool its owner dropped."""
        self.pools = [p for p in self.pools if p is not pool]

    def rows_left(self, pool: "NodePool") -> int:
        """The most rows ``pool`` could hold with every other pool as it is."""
        others = self.held_bytes() - pool.host_bytes()
        return max(0, (self.budget_bytes - others - pool.fixed_bytes) // pool.row_bytes)

    # --- checks before growth ----------------------------------------------
    def check(self, requests: Iterable[tuple["NodePool", int]], *, at_least: bool = False,
              extra_bytes: int = 0) -> None:
        """Raise MemoryBudgetError unless each pool can hold its ``rows`` at
        once within the budget (``extra_bytes`` more held beside them).  Grows
        nothing.  ``at_least``: the rows are a lower bound (the message says so)."""
        req = _merge(requests)
        check_budget(self._describe(req, at_least), self._bytes_with(req) + int(extra_bytes),
                     self.budget_bytes)

    def reserve(self, requests: Iterable[tuple["NodePool", int]]) -> None:
        """Make each pool hold at least its ``rows``, all or nothing.

        Checks the bytes of every pool after the growth first; only then
        grows, each pool by its slack (module docstring) out of what the
        budget leaves.
        """
        req = _merge(requests)
        grow = [(p, rows) for p, rows in req if rows > p.capacity]
        if not grow:
            return
        need = self._bytes_with(req)
        check_budget(self._describe(req, False), need, self.budget_bytes)
        spare = self.budget_bytes - need
        for pool, rows in grow:
            want = min(pool.capacity + pool.capacity // 2, rows + (rows >> 2))
            cap = max(rows, min(want, rows + spare // pool.row_bytes))
            spare -= (cap - rows) * pool.row_bytes
            pool.resize(cap)

    def _bytes_with(self, req: list[tuple["NodePool", int]]) -> int:
        rows = {id(p): r for p, r in req}
        total = 0
        for p in self.pools + [p for p, _ in req if p not in self.pools]:
            if id(p) in rows:
                total += p.fixed_bytes + max(p.capacity, rows[id(p)]) * p.row_bytes
            else:
                total += p.host_bytes()
        return total

    def _describe(self, req, at_least: bool) -> str:
        bound = "at least " if at_least else ""
        parts = []
        for p, rows in req:
            where = f" in {p.what}" if p.what and p.what != self.what else ""
            parts.append(f"{bound}{rows:,} {p.node}s{where}")
        return f"{self.what} with {' and '.join(parts)}" if parts else self.what


def _merge(requests) -> list[tuple["NodePool", int]]:
    """One (pool, rows) per pool, the largest rows asked for."""
    out: dict[int, list] = {}
    for pool, rows in requests:
        rows = int(rows)
        if id(pool) in out:
            out[id(pool)][1] = max(out[id(pool)][1], rows)
        else:
            out[id(pool)] = [pool, rows]
    return [(p, r) for p, r in out.values()]


class NodePool:
    """Rows of fixed-size nodes in one numpy array per field.

    ``fields``: name -> (dtype, per-row shape, fill of new rows).  ``node``
    names one row in messages (``"xa_node"``); ``what`` names the structure
    within the tracker (``"TD 3 mem_attr_array"``); ``fixed_bytes`` are held
    beside the rows (the tree's own bookkeeping arrays).  The pool registers
    with ``budget`` at once; its arrays are read by name, ``pool["slots"]``,
    and are new objects after every growth.
    """

    def __init__(self, budget: HostBudget, node: str, fields: dict[str, FieldSpec], *,
                 what: str = "", fixed_bytes: int = 0):
        self.budget = budget
        self.node = node
        self.what = what
        self.fields = {name: (np.dtype(dt), tuple(shape), fill)
                       for name, (dt, shape, fill) in fields.items()}
        self.row_bytes = sum(dt.itemsize * int(np.prod(shape, dtype=np.int64))
                             for dt, shape, _ in self.fields.values())
        self.fixed_bytes = int(fixed_bytes)
        self.arrays = self._new_arrays(0)
        budget.pools.append(self)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def capacity(self) -> int:
        return next(iter(self.arrays.values())).shape[0]

    def host_bytes(self) -> int:
        return self.capacity * self.row_bytes + self.fixed_bytes

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` rows, or MemoryBudgetError before growing."""
        self.budget.reserve([(self, rows)])

    def replace(self, rows: int, *, transient_bytes: int = 0, what: str | None = None) -> None:
        """Fresh rows, exactly ``rows`` of them, for an owner that rebuilds.

        The old rows are held while the new ones are filled, so the check
        counts both, plus ``transient_bytes`` of the owner's build buffers.
        ``what`` replaces the message's description.
        """
        rows = int(rows)
        need = (self.budget.held_bytes() + rows * self.row_bytes + int(transient_bytes))
        check_budget(what or f"{self.budget.what} with {rows:,} {self.node}s", need,
                     self.budget.budget_bytes)
        self.arrays = self._new_arrays(rows)

    def resize(self, cap: int) -> None:
        """Grow to ``cap`` rows keeping every row; call through HostBudget.reserve,
        which has checked the budget."""
        old = self.arrays
        n = self.capacity
        self.arrays = self._new_arrays(int(cap))
        for name, arr in old.items():
            self.arrays[name][:min(n, cap)] = arr[:min(n, cap)]

    def _new_arrays(self, rows: int) -> dict[str, np.ndarray]:
        # np.zeros leaves pages uncommitted until written, like a fresh slab
        return {name: (np.zeros((rows,) + shape, dt) if fill == 0
                       else np.full((rows,) + shape, fill, dt))
                for name, (dt, shape, fill) in self.fields.items()}
