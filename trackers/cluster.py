"""The one place that makes a Dask client: sweeps and sharded builds run their
independent units as ``dask.distributed`` tasks.

By default :func:`connect` starts a :class:`distributed.LocalCluster` of
worker *processes* on this machine, one per core, one thread each
(``threads_per_worker=1``), no Dask memory limit (the trackers' own memory
budget, :func:`trackers.base.memory_budget`, refuses what would not fit) and
the scheduler's HTTP server on a free port (``:0``: a fixed 8787 is taken by
any other run or cluster on the machine).  ``--scheduler ADDRESS`` (or ``$TRACKERS_SCHEDULER``) runs the
same tasks on an existing cluster instead (README "Many machines").  Workers
are started by multiprocessing's ``spawn`` (Dask's default), never ``fork``:
a parent that has loaded the kernel-code library runs liburcu's threads,
which a forked child would not have.

Timing policy.  A unit is *timed* (it times something on this machine:
builds, scans, conversions) or *modeled* (estimate(), counting, models).
Timed units ask for the resource :data:`TIMING`; on a local cluster one
worker declares ``{"timing": 1}``, so timed units run one at a time, each
alone in its worker process (one thread), while modeled units run on the
other workers meanwhile.  ``timed_workers=N`` (bench-core
``--timed-workers``) lets N workers declare it: N timed units at once, each
beside N - 1 others on this machine's cores and memory bandwidth, for a
sweep too long to run one unit at a time (the output says so).  On a user's cluster start one worker per machine
with ``--resources timing=1`` and the others without: timed units then run
one at a time per machine.  :func:`connect` refuses a cluster with no such
worker (timed units would wait for ever).

Peak RSS (:func:`reset_peak_rss`, :func:`peak_rss_bytes`): a measuring task
runs in a long-lived worker process, so ``ru_maxrss`` (the process's
lifetime peak) is not its own.  Before the task the worker collects garbage,
returns free heap to the system (glibc ``malloc_trim(0)``) and resets the
kernel's high-water mark by writing ``5`` to ``/proc/self/clear_refs``
(Documentation/filesystems/proc.rst: "To reset the peak resident set size
('high water mark') to the process's current value"); after it reads
``VmHWM`` from ``/proc/self/status``.  The peak is the task's, on top of the
worker's resident baseline at the reset (the interpreter and its libraries,
≈ 0.2-0.3 GiB, as a forked child's ``ru_maxrss`` included its parent's).
Where ``clear_refs`` cannot be written (not Linux) the peak is NaN.

Progress is a tqdm bar over :func:`distributed.as_completed`; results come
back in the order the units were given.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import math
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

#: the resource a timed unit asks for; one worker per machine declares it
TIMING = "timing"
#: the environment variable naming an existing scheduler (as --scheduler does)
SCHEDULER_ENV = "TRACKERS_SCHEDULER"


@dataclass
class Unit:
    """One independent unit of a sweep: ``fn(*args)`` in a worker.  ``timed``:
    it times something, so it runs alone on the timing worker (module doc)."""

    fn: Callable
    args: tuple = ()
    timed: bool = False
    label: str = ""
    kwargs: dict = field(default_factory=dict)


def scheduler_address(scheduler: str | None = None) -> str | None:
    """--scheduler, else $TRACKERS_SCHEDULER, else None (a local cluster)."""
    address = scheduler or os.environ.get(SCHEDULER_ENV, "").strip()
    return address or None


def add_scheduler_argument(parser, what: str = "tasks") -> None:
    """The ``--scheduler ADDRESS`` option of every command that runs tasks
    (bench-core, report, kexec): an existing cluster instead of a local one."""
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help=f"run the {what} on the Dask scheduler at ADDRESS (default: "
                             f"${SCHEDULER_ENV}, else a local cluster of one worker per "
                             f"core)")


def local_cluster(n_workers: int | None = None, timed_workers: int = 1):
    """A LocalCluster of ``n_workers`` worker processes (default: one per
    core), one thread each, the first ``timed_workers`` (default 1) timing
    workers: timed units run that many at a time, each beside the others
    (module doc; more than one trades clean times for wall time)."""
    import dask
    from distributed import LocalCluster
    n = max(1, n_workers or os.cpu_count() or 1, timed_workers)
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               memory_limit=0, dashboard_address=":0",
                               resources={TIMING: 1})
        cluster.scale(timed_workers)                     # each declares TIMING
        # the others: modeled units only (a new spec: the started ones share the old)
        cluster.new_spec = copy.deepcopy(cluster.new_spec)
        cluster.new_spec["options"].pop("resources")
        cluster.scale(n)
    return cluster


def check_timing_worker(client) -> None:
    """Raise ValueError unless some worker of ``client``'s cluster declares TIMING."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not any(w.get("resources", {}).get(TIMING) for w in workers.values()):
        raise ValueError(
            f"the cluster at {client.scheduler.address} has {len(workers)} worker(s), none "
            f"with the resource {TIMING!r}: start one worker per machine with "
            f"`dask worker ADDRESS --nthreads 1 --resources {TIMING}=1`")


@contextmanager
def connect(scheduler: str | None = None, n_workers: int | None = None,
            timed_workers: int = 1) -> Iterator:
    """A distributed.Client: on the scheduler at ``scheduler`` (or
    $TRACKERS_SCHEDULER), else on a LocalCluster (:func:`local_cluster`,
    ``timed_workers`` of its workers timing) torn down on exit."""
    from distributed import Client
    address = scheduler_address(scheduler)
    if address is not None:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise ValueError(f"--scheduler {address}: cannot reach a Dask scheduler "
                             f"there ({exc})") from None
        try:
            client.wait_for_workers(1, timeout=60)
            check_timing_worker(client)
            yield client
        finally:
            client.close()
        return
    cluster = local_cluster(n_workers, timed_workers)
    try:
        client = Client(cluster)
        try:
            client.wait_for_workers(len(cluster.worker_spec))
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def run_units(client, units: list[Unit], desc: str = "", progress: bool = True,
              weights: list[int] | None = None, bar=None,
              errors: str = "raise", name_running: bool = False) -> list[Any]:
    """Each unit as a task on ``client``, started in the order of ``units``
    as workers free up; return their results in that order.  A tqdm bar
    (``desc``; or ``bar``, advanced by ``weights`` per unit) counts units as
    they complete, named after the last one done -- or, with
    ``name_running``, after the first unit of non-zero weight not yet done
    (timed units given first run in that order on the one timing worker, so
    that is the one running).  A unit that raises (or whose worker dies)
    re-raises here after the others finish, or, with ``errors="return"``,
    stands as its exception in the results."""
    from distributed import as_completed
    from tqdm import tqdm
    # priority: in the order given (the scheduler runs higher priorities first)
    futures = [client.submit(u.fn, *u.args, **u.kwargs, key=_key(u, i), pure=False,
                             resources={TIMING: 1} if u.timed else None,
                             priority=len(units) - i)
               for i, u in enumerate(units)]
    weight = dict(zip((f.key for f in futures), weights or [1] * len(futures)))
    label = {f.key: u.label for f, u in zip(futures, units)}
    own = bar is None
    if own:
        bar = tqdm(total=sum(weight.values()), desc=desc, file=sys.stderr,
                   disable=not progress)
    pending = [f.key for f in futures if weight[f.key]]

    def name_next():
        if pending:
            bar.set_description(f"{desc}: {label[pending[0]]}" if desc else label[pending[0]])
        else:
            bar.set_description(desc)

    if name_running:
        name_next()
    try:
        for f in as_completed(futures):
            if name_running:
                if f.key in pending:
                    pending.remove(f.key)
                name_next()
            elif label[f.key]:
                bar.set_description(label[f.key])
            bar.update(weight[f.key])
    finally:
        if own:
            bar.close()
    if errors == "return":
        return [f.exception() if f.status == "error" else f.result() for f in futures]
    return client.gather(futures)


def _key(unit: Unit, i: int) -> str:
    name = getattr(unit.fn, "__name__", "unit")
    return f"{name}-{i}-{os.urandom(4).hex()}"


# --------------------------------------------------------------------------
# peak RSS of one task in a long-lived worker

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def reset_peak_rss(collect: bool = True) -> bool:
    """Collect garbage (``collect``: a full collection costs ~0.1 s in a
    worker that has compiled the numba kernels), give free heap back, reset
    VmHWM to the current RSS (module doc); False where the high-water mark
    cannot be reset."""
    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field_name: str) -> int | None:
    try:
        with open(_STATUS) as f:
            m = re.search(rf"^{field_name}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def peak_rss_bytes() -> float:
    """VmHWM of this process in bytes (NaN where /proc cannot say)."""
    kib = _status_kib("VmHWM")
    return math.nan if kib is None else kib * 1024


def with_peak_rss(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """(fn(*args), the peak RSS in bytes of this process while it ran: NaN
    where the high-water mark cannot be reset)."""
    ok = reset_peak_rss()
    result = fn(*args, **kwargs)
    return result, peak_rss_bytes() if ok else math.nan
