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
worker (timed units would wait for ever).  The kexec table's timed units,
whose only timed parts are their scans, go further on the local cluster:
there N workers time (trackers.machine_lock.builds_at_once: one per core and
one more), the units build beside each other as far as the memory they
claim fits (run_units' ``capacity_bytes``), and each scan runs alone on the
machine under trackers/machine_lock.py's lock.

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

Progress is a tqdm bar over the units as they complete; results come back
in the order the units were given.

Failures are one line, never a hang or a silent loss (:func:`run_units`).
Timed units are handed to the scheduler only as timing slots free up (one
per timing worker), so a worker that dies takes one unit with it, not every
unit queued behind it: that unit fails with :class:`WorkerLost` naming it
(or, with ``errors="return"``, stands as that error in the results), and the
rest run on the worker its nanny restarts.  A cluster left with no timing
worker for :data:`TIMING_GRACE_S` while timed units wait raises
:class:`WorkerLost` naming the worker lost and the units that cannot run.
A local cluster's workers ignore SIGINT (:func:`dask_setup`): a terminal's
Ctrl-C reaches the whole process group, and only the command's own process
answers it, in one line, while it stops them; and distributed's own logs
(a failed task's traceback, a worker restarted) are silenced below
CRITICAL, since the command reports every failure itself.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import logging
import math
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

#: the resource a timed unit asks for; one worker per machine declares it
TIMING = "timing"
#: the environment variable naming an existing scheduler (as --scheduler does)
SCHEDULER_ENV = "TRACKERS_SCHEDULER"
#: seconds timed units wait for a timing worker before the run stops: a nanny
#: restarts a dead worker in a few seconds (spawn and imports), far less
TIMING_GRACE_S = 30.0
#: seconds between looks at the cluster while units run
POLL_S = 1.0
#: what a local cluster's workers run without, so that a scan timed in a
#: worker takes what it takes in a plain process.  Dask's nanny starts workers
#: with MALLOC_TRIM_THRESHOLD_=65536 (distributed.yaml, pre-spawn-environ),
#: which also fixes glibc's mmap threshold at 128 KiB (mallopt(3)): every
#: array a scan returns is then mmapped and faulted in afresh, and
#: bitmap@kernel's scan of a 16 GiB reference set took 23 ms instead of 8
#: here.  Its statistical profiler takes the GIL every 10 ms (4.9 -> 6.0 ms
#: at 4 GiB).
TIMING_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False}


class WorkerLost(RuntimeError):
    """A unit's worker died while running it, or the cluster has no timing
    worker left for the timed units: one line naming what was lost.
    ``what``: the unit (its label; "" for the cluster), ``why``: the rest."""

    def __init__(self, what: str, why: str):
        super().__init__(f"{what}: {why}" if what else why)
        self.what = what
        self.why = why


@dataclass
class Unit:
    """One independent unit of a sweep: ``fn(*args)`` in a worker.  ``timed``:
    it times something, so it runs alone on a timing worker (module doc)."""

    fn: Callable
    args: tuple = ()
    timed: bool = False
    label: str = ""
    kwargs: dict = field(default_factory=dict)
    #: bytes a timed unit may hold while it runs (run_units' capacity_bytes)
    claim_bytes: int = 0


#: the comm schemes a command connects to a scheduler with (distributed.comm:
#: tcp, tls and websockets; inproc:// lives inside one process, ucx:// needs
#: UCX); none: tcp
SCHEMES = ("tcp", "tls", "ws", "wss")
_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?"
                      r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(?::(?P<port>[^:/]*))?")
_WANT = (f"want a Dask scheduler's address, tcp://HOST:PORT as `dask scheduler` prints it "
         f"(or {', '.join(s + '://' for s in SCHEMES[1:])})")


def check_scheduler_address(address: str) -> str:
    """``address`` if it is one a command can connect to: SCHEME://HOST:PORT
    (SCHEMES; none means tcp), PORT in [1, 65535]; else ValueError saying
    what is wrong and what is wanted (the address itself, the caller names
    the option)."""
    m = _ADDRESS.fullmatch(address.strip())
    scheme = m and m.group("scheme")
    if m and scheme and scheme not in SCHEMES:
        why = ("inproc:// names a scheduler inside one process" if scheme == "inproc" else
               f"{scheme}:// is not a scheme this command connects with")
        raise ValueError(f"{why}: {_WANT}")
    if not m or m.group("port") is None:
        raise ValueError(f"no HOST:PORT: {_WANT}")
    port = m.group("port")
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} must be in [1, 65535]: {_WANT}")
    return address.strip()


def scheduler_option(text: str) -> str:
    """An argparse ``type=`` for --scheduler (:func:`check_scheduler_address`)."""
    import argparse
    try:
        return check_scheduler_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def scheduler_address(scheduler: str | None = None) -> str | None:
    """--scheduler, else $TRACKERS_SCHEDULER (checked: ValueError naming it),
    else None (a local cluster)."""
    if scheduler:
        return scheduler
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        return None
    try:
        return check_scheduler_address(address)
    except ValueError as exc:
        raise ValueError(f"${SCHEDULER_ENV}={address!r}: {exc}") from None


def add_scheduler_argument(parser, what: str = "tasks") -> None:
    """The ``--scheduler ADDRESS`` option of every command that runs tasks
    (bench-core, report, kexec): an existing cluster instead of a local one."""
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", type=scheduler_option,
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
                          "distributed.scheduler.allowed-failures": 0,
                          **TIMING_WORKER_CONFIG}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               memory_limit=0, dashboard_address=":0",
                               resources={TIMING: 1}, silence_logs=logging.CRITICAL,
                               preload=[__name__])
        cluster.scale(timed_workers)                     # each declares TIMING
        # the others: modeled units only (a new spec: the started ones share the old)
        cluster.new_spec = copy.deepcopy(cluster.new_spec)
        cluster.new_spec["options"].pop("resources")
        cluster.scale(n)
        cluster.wait_for_workers(n)    # every nanny spawned under this config
    return cluster


def _quietly(close) -> None:
    """Close a client or cluster while an exception (a Ctrl-C, out of memory)
    is on its way up: what the close raises (distributed's sync() can, when
    interrupted) must not replace it, nor print."""
    try:
        close()
    except Exception:
        pass


def dask_setup(worker) -> None:
    """A local worker's preload (distributed runs it as each worker process
    starts, restarts included): ignore SIGINT.  A terminal's Ctrl-C goes to
    the whole process group; the command's own process answers it in one
    line and stops the workers, which would otherwise each print a
    KeyboardInterrupt traceback.  (A worker of the ``tdx-trackers`` command
    ignores it earlier, from its first import of the package:
    trackers/__init__.py.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def timing_workers(client) -> dict[str, float]:
    """Address -> TIMING slots of every worker of ``client``'s cluster that declares it."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {a: w["resources"][TIMING] for a, w in workers.items()
            if w.get("resources", {}).get(TIMING)}


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
        except BaseException:
            _quietly(client.close)
            raise
        client.close()
        return
    cluster = local_cluster(n_workers, timed_workers)
    try:
        client = Client(cluster)
    except BaseException:
        _quietly(cluster.close)
        raise
    try:
        client.wait_for_workers(len(cluster.worker_spec))
        yield client
    except BaseException:
        _quietly(client.close)
        _quietly(cluster.close)
        raise
    client.close()
    cluster.close()


def run_units(client, units: list[Unit], desc: str = "", progress: bool = True,
              weights: list[int] | None = None, bar=None,
              errors: str = "raise", name_running: bool = False,
              capacity_bytes: int | None = None) -> list[Any]:
    """Each unit as a task on ``client``, started in the order of ``units``
    as workers free up; return their results in that order.  A tqdm bar
    (``desc``; or ``bar``, advanced by ``weights`` per unit) counts units as
    they complete, named after the last one done -- or, with
    ``name_running``, after the first unit of non-zero weight submitted and
    not yet done (the one the timing worker runs).  A unit that raises
    re-raises here after the others
    finish, or, with ``errors="return"``, stands as its exception in the
    results; a unit whose worker died is :class:`WorkerLost` naming the unit
    (its label).  Timed units go to the scheduler one per free timing slot
    (module doc); with none left for :data:`TIMING_GRACE_S`, WorkerLost
    names the workers lost and the units waiting.  ``capacity_bytes``: the
    timed units running at once claim (Unit.claim_bytes) no more than this
    between them -- the first waiting unit that fits goes next, and one that
    fits nothing runs once it is alone."""
    from distributed import wait
    from distributed.client import FuturesCancelledError
    from tqdm import tqdm
    futures: list = [None] * len(units)

    def submit(i: int) -> None:
        u = units[i]
        # priority: in the order given (the scheduler runs higher priorities first)
        futures[i] = client.submit(u.fn, *u.args, **u.kwargs, key=_key(u, i), pure=False,
                                   resources={TIMING: 1} if u.timed else None,
                                   priority=len(units) - i)

    for i, u in enumerate(units):
        if not u.timed:
            submit(i)
    waiting = [i for i, u in enumerate(units) if u.timed]       # timed, not yet submitted
    weight = weights or [1] * len(units)
    own = bar is None
    if own:
        bar = tqdm(total=sum(weight), desc=desc, file=sys.stderr, disable=not progress)
    counted: set[int] = set()
    timing = timing_workers(client) if waiting else {}
    seen, alone_since = set(timing), None
    try:
        while True:
            busy = [i for i, f in enumerate(futures)
                    if f is not None and units[i].timed and f.status == "pending"]
            claimed = sum(units[i].claim_bytes for i in busy)
            while waiting and len(busy) < sum(timing.values()):
                fits = [k for k, i in enumerate(waiting) if capacity_bytes is None
                        or claimed + units[i].claim_bytes <= capacity_bytes]
                if not fits and busy:
                    break                               # wait for a claim to end
                i = waiting.pop(fits[0] if fits else 0)
                submit(i)
                busy.append(i)
                claimed += units[i].claim_bytes
            running = [i for i, f in enumerate(futures) if f is not None and f.status == "pending"]
            for i, f in enumerate(futures):
                if f is not None and f.status != "pending" and i not in counted:
                    counted.add(i)
                    if units[i].label and not name_running:
                        bar.set_description(units[i].label)
                    bar.update(weight[i])
            if name_running:
                now = next((i for i, f in enumerate(futures) if f is not None and weight[i]
                            and i not in counted), None)
                label = units[now].label if now is not None else ""
                bar.set_description(f"{desc}: {label}" if desc and label else label or desc)
            if not running and not waiting:
                break
            try:
                if running:
                    wait([futures[i] for i in running], timeout=POLL_S,
                         return_when="FIRST_COMPLETED")
                else:
                    time.sleep(POLL_S)
            except TimeoutError:
                pass
            except FuturesCancelledError:          # a dead worker held what they needed
                lost = [i for i in running if futures[i].status == "cancelled"]
                client.cancel([f for f in futures if f is not None])
                raise WorkerLost(_name(units[lost[0]]) if lost else "",
                                 "a worker died (killed, or out of memory) holding its input "
                                 "(data scattered to the cluster)"
                                 + (f"; {len(lost) - 1} more task(s) lost it too"
                                    if len(lost) > 1 else "")) from None
            if waiting or any(units[i].timed for i in running):
                timing = timing_workers(client)
                seen |= set(timing)
                if timing:
                    alone_since = None
                elif alone_since is None:
                    alone_since = time.monotonic()
                elif time.monotonic() - alone_since > TIMING_GRACE_S:
                    stuck = [i for i in running if units[i].timed] + waiting
                    client.cancel([f for f in futures if f is not None])
                    raise WorkerLost("", _no_timing_worker(client, seen,
                                                           [units[i] for i in stuck]))
    finally:
        if own:
            bar.close()
    failed = {i: f.exception() for i, f in enumerate(futures) if f.status == "error"}
    failed = {i: _died(units[i], exc) if _killed(exc) else exc
              for i, exc in failed.items()}
    if errors != "return" and failed:
        first = failed[min(failed)]
        if isinstance(first, WorkerLost):
            raise first
        futures[min(failed)].result()              # the unit's own exception, re-raised
    ok = [i for i in range(len(futures)) if i not in failed]
    results = dict(zip(ok, client.gather([futures[i] for i in ok])))
    return [failed[i] if i in failed else results[i] for i in range(len(futures))]


def _killed(exc) -> bool:
    """Is ``exc`` distributed's KilledWorker (the task's worker died running it)?"""
    return type(exc).__name__ == "KilledWorker"


def _name(unit: Unit) -> str:
    return unit.label or getattr(unit.fn, "__name__", "a task")


def _died(unit: Unit, exc) -> WorkerLost:
    worker = getattr(getattr(exc, "last_worker", None), "address", None)
    return WorkerLost(_name(unit),
                      "its worker" + (f" ({worker})" if worker else "")
                      + " died while running it (killed, or out of memory)")


def _no_timing_worker(client, seen: set[str], stuck: list[Unit]) -> str:
    names = [_name(u) for u in stuck]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"the cluster at {client.scheduler.address} lost its timing worker "
            f"({', '.join(sorted(seen)) or 'none seen'}) and has had none for "
            f"{TIMING_GRACE_S:.0f} s: {len(stuck)} timed task(s) cannot run ({shown}); start "
            f"one with `dask worker {client.scheduler.address} --nthreads 1 --resources "
            f"{TIMING}=1`")


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
