"""Build the kernel's own XArray, IDA, maple tree and bitmap code into a shared library.

The kernel's ``lib/xarray.c``, ``lib/radix-tree.c``, ``lib/idr.c`` and
``lib/maple_tree.c`` compile unchanged in userspace against the shims of
``tools/testing/shared`` and ``tools/include``, the way
``tools/testing/radix-tree`` builds its test programs (its Makefile and
``tools/testing/shared/shared.mk``).  :func:`build` compiles those sources,
the harness's allocator and bit helpers (``tools/testing/shared/linux.c``,
``tools/lib/{slab,find_bit,bitmap,hweight,vsprintf}.c``), our glue
(``glue.c``, ``glue_xarray.c``, ``glue_ida.c``, ``glue_bitmap.c``: :data:`GLUE`)
and our ``pages.c`` and ``directmap.c`` (MIT: models of struct page and of
the direct map's page tables, no kernel code, compiled without the kernel's
include paths) into one library, ``-O2 -fPIC -shared``, linked with liburcu
as the harness links it.

One kernel function comes from a file that does not build in userspace:
``__bitmap_set`` (what ``bitmap_set()`` calls for a length known at run
time) is in ``lib/bitmap.c`` only, whose other functions need
``linux/device.h`` and clash with ``tools/include/linux/bitmap.h``'s
declarations (``__bitmap_weight``, ``bitmap_zalloc``, ...).  The build copies
that one function, byte for byte, from the tree's ``lib/bitmap.c`` into a
generated unit compiled like ``tools/lib/bitmap.c`` (:data:`VERBATIM`); its
``__bitmap_clear`` partner is ``tools/lib/bitmap.c``'s, and the build record
says whether that copy equals ``lib/bitmap.c``'s (``verbatim``).  Nothing is shipped prebuilt: the library is built
here, from the kernel source on this machine, and cached per kernel version
in ``$TRACKERS_LINUX_CACHE`` (default ``$XDG_CACHE_HOME/tdx-page-trackers``
or ``~/.cache/tdx-page-trackers``)::

    linux-<version>/src/                the subset of the source the build reads
    linux-<version>/libtdxkernel-<key>.so   <key>: hash of SOURCES (our C files), the recipe
    linux-<version>/build-<key>.json    version, source, flags, build seconds
    current.json                        which library binding.library() loads (where
                                        it was built from other sources, the build of
                                        this package's, for the same kernel, if kept)

The geometry the models use, and how it is obtained (the harness's defaults
differ):

* ``XA_CHUNK_SHIFT`` 6 (576-B ``struct xa_node``, 64 slots): the harness
  generates ``generated/map-shift.h`` with ``SHIFT=3`` (8 slots) unless told
  otherwise; we generate it with 6, as ``make SHIFT=6`` would.
* ``CONFIG_64BIT`` (256-B ``struct maple_node``, ``MAPLE_RANGE64_SLOTS``
  16): ``generated/autoconf.h`` defines it, but it reaches a file only
  through ``include/linux/kconfig.h``, and a file that includes
  ``linux/maple_tree.h`` first (the maple shim route,
  ``tools/testing/shared/maple-shared.h``) sees the 32-bit layout: 512-B
  nodes, 32 range slots.  Every object here is compiled with
  ``-include generated/autoconf.h``, so every file sees CONFIG_64BIT (and
  CONFIG_XARRAY_MULTI) before its first line; glue.c's ``_Static_assert``\\ s
  then pin the sizes in the object that holds ``lib/maple_tree.c``.
* Production code paths: ``XA_DEBUG`` and ``CONFIG_DEBUG_MAPLE_TREE``,
  which the harness sets for its tests, are left unset, as in a
  distribution kernel.
* GFP_NOWAIT: the harness fails every allocation made without
  __GFP_DIRECT_RECLAIM so that its tests exercise xas_nomem/mas_nomem;
  the library wraps the three allocators at link time (``--wrap``) so that
  they succeed, as in a kernel with free memory (glue.c says more).

Building atomically: sources are extracted into a temporary directory and
renamed into place, objects are compiled in a temporary directory in the
cache, and the library is renamed into place last, so a killed build never
leaves a half library (or a half source tree that a later build trusts).
Builds into one cache directory take turns (an flock on ``.build.lock``).

Checked before it is loaded: the build record keeps the library's size and
sha256 (``library_bytes``, ``library_sha256``), and :func:`current_library`
compares them with the file before anyone dlopen()s it
(:mod:`trackers.linux.integrity` says why); a library that does not match is
:class:`KernelLibraryDamaged`, which :func:`trackers.linux.library` answers
by rebuilding from the recorded source or running on the emulations,
saying which.  clear.c's library (trackers/linux/clear.py, built apart with
this module's compiler and flags) keeps the same record beside it and is
compiled again when it does not match.

Everything written into the cache gets the mode open() or mkdir() would
give it under the umask (trackers.output), as every other output does.
"""

from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..output import directory_mode, write_text_atomic
from .integrity import damage, library_record, seal, taking_turns

#: what a fresh Debian 12 machine needs, and what .ci/run installs
DEBIAN_PACKAGES = ("linux-source-6.12", "liburcu-dev", "gcc")
INSTALL_HINT = "apt-get install " + " ".join(DEBIAN_PACKAGES)
LINUX_SRC_HINT = "or pass --linux-src DIR_OR_TARBALL (a kernel tree >= 6.1 or its .tar.xz)"
#: what a user does when a package is missing (the report's advice by default)
INSTALL_FIX = f"install `{INSTALL_HINT}` (as root) and run `tdx-trackers report` again"
CACHE_ENV = "TRACKERS_LINUX_CACHE"
DEFAULT_TARBALLS = "/usr/src/linux-source-*.tar.xz"
MIN_VERSION = (6, 1)

#: the glue to the kernel's code (GPL-2.0; trackers/linux/binding.py), one
#: unit per file, each compiled with the kernel's include paths: glue.c (the
#: harness glue and the maple tree: it includes lib/maple_tree.c), the
#: XArray, the IDA, the bitmap
GLUE = tuple(Path(__file__).with_name(f"{stem}.c")
             for stem in ("glue", "glue_xarray", "glue_ida", "glue_bitmap"))
#: the struct page and direct-map models (MIT; no kernel code), one unit
#: each, compiled without the kernel's include paths: trackers/linux/pages.py
PAGES = (Path(__file__).with_name("pages.c"), Path(__file__).with_name("directmap.c"))
#: the headers they include: the run collector every scan shares (runs.h,
#: MIT), what the glue's files share (glue.h, GPL-2.0), what the two models
#: share (pages.h, MIT)
HEADERS = tuple(Path(__file__).with_name(name) for name in ("runs.h", "glue.h", "pages.h"))
#: every C file and header the library is built from: checked before a
#: build, hashed into fingerprint()
SOURCES = (*GLUE, *PAGES, *HEADERS)
LIB_STEM = "libtdxkernel"

#: kernel files the build compiles or includes (paths in the kernel tree)
KERNEL_SOURCES = ("lib/xarray.c", "lib/radix-tree.c", "lib/idr.c")
TOOLS_SOURCES = ("tools/testing/shared/linux.c", "tools/lib/slab.c", "tools/lib/find_bit.c",
                 "tools/lib/bitmap.c", "tools/lib/hweight.c", "tools/lib/vsprintf.c")
#: kernel functions compiled verbatim from a file that does not build as a
#: whole (module docstring): generated unit -> (file in the tree, function)
VERBATIM = {"lib_bitmap_set": ("lib/bitmap.c", "__bitmap_set")}
#: the tools/ copy of a function, checked against the kernel file's own
#: (recorded in the build record): (tools file, kernel file, function)
TOOLS_COPIES = (("tools/lib/bitmap.c", "lib/bitmap.c", "__bitmap_clear"),)
REQUIRED = KERNEL_SOURCES + TOOLS_SOURCES + (
    "lib/maple_tree.c", "lib/bitmap.c", "lib/radix-tree.h", "include/linux/xarray.h",
    "include/linux/maple_tree.h", "include/linux/idr.h", "include/linux/radix-tree.h",
    "tools/testing/shared/shared.h", "tools/testing/shared/autoconf.h", "Makefile")

#: what to extract from a tarball (paths after its top directory): whole
#: directories, and directories whose own files (not subdirectories) are taken
_TREES = ("tools/include/", "tools/testing/shared/")
_FLAT_DIRS = ("include/linux/", "lib/", "tools/lib/")

CFLAGS = ("-O2", "-fPIC", "-g0", "-Wall", "-Wno-unused-function",
          "-Werror=implicit-function-declaration", "-D_LGPL_SOURCE")
XA_CHUNK_SHIFT = 6
#: symbols the library wraps (glue.c's __wrap_*): the allocators' GFP flags,
#: and call_rcu (urcu.h maps it to urcu_memb_call_rcu), whose frees glue.c runs
WRAPPED = ("kmalloc", "kmem_cache_alloc_lru", "kmem_cache_alloc_bulk", "urcu_memb_call_rcu")
LDLIBS = ("-lurcu", "-lpthread")
#: bump when _recipe() changes in a way the constants above do not show
RECIPE_REVISION = 2



class KernelCodeUnavailable(OSError):
    """The kernel's own code cannot be built or loaded on this machine.

    The message names what is missing (where it is a package: the Debian
    packages that provide it and the ``--linux-src`` flag); ``fix`` says
    what a user does about it, for the report's first line.  An OSError:
    something about this machine, not a bad argument."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.fix = fix or INSTALL_FIX

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class KernelLibraryDamaged(KernelCodeUnavailable):
    """The cached library does not hold the bytes its build wrote (its size
    or sha256 differs from the build record's): loading it could kill the
    process with SIGBUS.  ``library`` is its path, ``info`` its build record
    (``info["source"]`` what it was built from), ``what`` how it differs
    (:func:`trackers.linux.integrity.damage`)."""

    def __init__(self, library: Path, info: dict, what: str):
        super().__init__(f"the kernel library {library} {what}",
                         fix="run `tdx-trackers kernel-build --force`")
        self.library = library
        self.info = info
        self.what = what


def _unavailable(what: str) -> KernelCodeUnavailable:
    """A package (or the kernel source) is missing: the message says which to install."""
    return KernelCodeUnavailable(f"{what}; install: {INSTALL_HINT}, {LINUX_SRC_HINT}")


# --------------------------------------------------------------------------
# where things are

def cache_root() -> Path:
    """$TRACKERS_LINUX_CACHE, else $XDG_CACHE_HOME/tdx-page-trackers, else
    ~/.cache/tdx-page-trackers."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tdx-page-trackers"


def _version_key(path: Path) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", path.name))


def default_source() -> Path:
    """The newest /usr/src/linux-source-*.tar.xz (Debian's linux-source-X.Y)."""
    found = sorted((Path(p) for p in glob.glob(DEFAULT_TARBALLS)), key=_version_key)
    if not found:
        raise _unavailable(f"no kernel source: no {DEFAULT_TARBALLS}")
    return found[-1]


def _parse_makefile(text: str, where: str) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION] of the kernel's top Makefile."""
    vals = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=[ \t]*(\S*)[ \t]*$", text, re.M)
        vals[key] = m.group(1) if m else ""
    if not (vals["VERSION"].isdigit() and vals["PATCHLEVEL"].isdigit()):
        raise _unavailable(f"no kernel version (VERSION/PATCHLEVEL) in {where}")
    version = f"{vals['VERSION']}.{vals['PATCHLEVEL']}.{vals['SUBLEVEL'] or 0}"
    version += vals["EXTRAVERSION"]
    if (int(vals["VERSION"]), int(vals["PATCHLEVEL"])) < MIN_VERSION:
        raise _unavailable(f"kernel {version} in {where} is older than "
                           f"{MIN_VERSION[0]}.{MIN_VERSION[1]} (no maple tree harness)")
    return version


def _is_tarball(path: Path) -> bool:
    return path.is_file() and any(path.name.endswith(s) for s in
                                  (".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2"))


def _tar_mode(path: Path) -> str:
    name = path.name
    if name.endswith((".xz", ".txz")):
        return "r|xz"
    if name.endswith((".gz", ".tgz")):
        return "r|gz"
    if name.endswith(".bz2"):
        return "r|bz2"
    return "r|"


def _strip_top(name: str) -> str:
    """A member's path inside the kernel tree (the tarball's top directory dropped)."""
    parts = name.lstrip("./").split("/", 1)
    return parts[1] if len(parts) == 2 else ""


def tarball_version(tarball: Path) -> str:
    """The kernel version of a source tarball, from its top Makefile: the
    stream is read only until that member (the fourth in Debian's tarball)."""
    try:
        with tarfile.open(tarball, _tar_mode(tarball)) as tf:
            for m in tf:
                if m.isfile() and _strip_top(m.name) == "Makefile":
                    text = tf.extractfile(m).read().decode("utf-8", "replace")
                    return _parse_makefile(text, f"{tarball}:Makefile")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _unavailable(f"kernel source tarball {tarball} unreadable ({exc})") from exc
    raise _unavailable(f"no top-level Makefile in {tarball}")


#: the cache root's record of tarball versions, by source id (_source_id)
TARBALL_VERSIONS = "tarball-versions.json"


def known_tarball_version(tarball: Path) -> str:
    """:func:`tarball_version`, read once per tarball (its path, size and
    mtime) and then from the cache root: Debian's linux-source-6.12 puts the
    top Makefile after 10,000 members, 3-5 s of decompression that every
    build() -- every report, every test session -- would repeat."""
    path = cache_root() / TARBALL_VERSIONS
    sid = _source_id(tarball)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(sid), str):
        return known[sid]
    version = tarball_version(tarball)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**known, sid: version})
    except OSError:
        pass                           # a cache that cannot be written: read it again next time
    return version


def tree_version(tree: Path) -> str:
    mk = tree / "Makefile"
    if not mk.is_file():
        raise _unavailable(f"no kernel tree at {tree} (no Makefile)")
    return _parse_makefile(mk.read_text(errors="replace"), str(mk))


def wanted(rel: str) -> bool:
    """Is this path (inside the kernel tree) one the build reads?"""
    if rel == "Makefile" or rel.startswith(_TREES):
        return True
    if rel.startswith("tools/arch/"):                  # tools/arch/<arch>/include/...
        parts = rel.split("/")
        return len(parts) > 3 and parts[3] == "include"
    for d in _FLAT_DIRS:
        if rel.startswith(d) and "/" not in rel[len(d):]:
            return True
    return False


def _extract(tarball: Path, dest: Path) -> int:
    """Stream the tarball once and extract the wanted members into dest;
    returns how many files were written."""
    n = 0
    data_filter = getattr(tarfile, "data_filter", None)
    with tarfile.open(tarball, _tar_mode(tarball)) as tf:
        for m in tf:
            rel = _strip_top(m.name)
            if not rel or not (m.isfile() or m.issym() or m.islnk()) or not wanted(rel):
                continue
            m.name = rel
            if m.islnk():
                m.linkname = _strip_top(m.linkname)
            if data_filter is not None:
                tf.extract(m, dest, filter="data")
            else:                                     # Python < 3.11.4
                if m.issym() or m.islnk() or os.path.isabs(rel) or ".." in rel.split("/"):
                    continue
                tf.extract(m, dest)
            n += 1
    return n


# --------------------------------------------------------------------------
# checks

def find_compiler() -> str:
    """$CC if set (it must exist), else gcc, else cc: the compiler's path."""
    env = os.environ.get("CC", "").strip()
    if env:
        exe = shutil.which(env.split()[0])
        if not exe:
            raise _unavailable(f"no C compiler: $CC={env} is not on PATH")
        return exe
    for cand in ("gcc", "cc"):
        exe = shutil.which(cand)
        if exe:
            return exe
    raise _unavailable("no C compiler (gcc or cc) on PATH")


def check_liburcu(cc: str, workdir: Path) -> None:
    """Compile and link a program that uses liburcu's default flavour."""
    src = workdir / "urcu_probe.c"
    src.write_text("#include <urcu.h>\nint main(void)\n"
                   "{ rcu_register_thread(); rcu_unregister_thread(); return 0; }\n")
    proc = subprocess.run([cc, "-D_LGPL_SOURCE", str(src), "-o", str(workdir / "urcu_probe"),
                           *LDLIBS], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        raise _unavailable(f"no liburcu (userspace RCU: urcu.h and -lurcu) for {cc}: {tail}")


def _check_tree(tree: Path) -> None:
    missing = [p for p in REQUIRED if not (tree / p).is_file()]
    if missing:
        raise _unavailable(f"kernel source at {tree} lacks {', '.join(missing)}")


# --------------------------------------------------------------------------
# the build

def _recipe(tree: Path, gen: Path, version: str) -> dict:
    """Every compiler invocation of the build, relative to nothing on disk
    but the tree and the generated headers."""
    shared = tree / "tools/testing/shared"
    includes = [f"-I{shared}", f"-I{gen}", f"-I{tree / 'tools/include'}", f"-I{tree / 'lib'}",
                "-include", str(gen / "generated/autoconf.h")]
    units = {}
    for rel in KERNEL_SOURCES + TOOLS_SOURCES:
        extra = []
        if rel == "lib/xarray.c":                   # tools/testing/shared/xarray-shared.c,
            extra = ["-include", str(shared / "shared.h")]   # without XA_DEBUG
        units[Path(rel).stem] = [*CFLAGS, *includes, *extra, str(tree / rel)]
    for unit in VERBATIM:
        units[unit] = [*CFLAGS, *includes, str(gen / f"{unit}.c")]
    for path in GLUE:
        units[path.stem] = [*CFLAGS, *includes, f'-DTDX_LINUX_VERSION="{version}"', str(path)]
    for path in PAGES:                              # no kernel headers: they link none
        units[path.stem] = [*CFLAGS, str(path)]
    link = ["-shared", "-fPIC", "-Wl,-z,defs",
            "-Wl," + ",".join(f"--wrap={s}" for s in WRAPPED), *LDLIBS]
    return {"units": units, "link": link}


def fingerprint() -> str:
    """Hash of every file of :data:`SOURCES` and the build recipe's
    settings: the library's key.  A library built from another C file,
    header or other flags is never loaded."""
    h = hashlib.sha256()
    for path in SOURCES:
        h.update(path.read_bytes())
    h.update(json.dumps([RECIPE_REVISION, CFLAGS, XA_CHUNK_SHIFT, WRAPPED, LDLIBS,
                         KERNEL_SOURCES, TOOLS_SOURCES, VERBATIM]).encode())
    return h.hexdigest()[:12]


def _generate(gen: Path) -> None:
    """tools/testing/shared/shared.mk's generated headers, with SHIFT=6 and
    LONG_BIT=64 (its generated/autoconf.h is a copy of shared/autoconf.h)."""
    d = gen / "generated"
    d.mkdir(parents=True, exist_ok=True)
    (d / "map-shift.h").write_text(f"#define XA_CHUNK_SHIFT {XA_CHUNK_SHIFT}\n")
    (d / "bit-length.h").write_text("#define CONFIG_64BIT 1\n")


def function_text(source: str, name: str, where: str) -> str:
    """The definition of the C function ``name`` in ``source``, verbatim:
    from the line that starts its definition (``type name(`` at column 0,
    its parameters, then ``{``: no prototype) to the first line that is a
    lone ``}``."""
    m = re.search(rf"^[A-Za-z_][^\n;]*\b{re.escape(name)}\([^;{{}}]*\)\s*\{{.*?^}}$",
                  source, re.M | re.S)
    if not m:
        raise _unavailable(f"no definition of {name} in {where}")
    return m.group(0) + "\n"


def _verbatim(tree: Path, gen: Path) -> dict:
    """Write each :data:`VERBATIM` unit; return what the build record keeps:
    each copied function's file and sha256, and whether each tools/ copy of
    :data:`TOOLS_COPIES` equals the kernel file's function."""
    record = {}
    for unit, (rel, name) in VERBATIM.items():
        text = function_text((tree / rel).read_text(errors="replace"), name, rel)
        (gen / f"{unit}.c").write_text(
            f"/* {name}, copied verbatim from the kernel tree's {rel} by\n"
            f" * trackers/linux/build.py: that file does not build in userspace. */\n"
            f"#include <linux/bitmap.h>\n\n{text}")
        record[f"{rel}:{name}"] = hashlib.sha256(text.encode()).hexdigest()[:12]
    for tools_rel, rel, name in TOOLS_COPIES:
        same = [" ".join(function_text((tree / r).read_text(errors="replace"), name, r).split())
                for r in (tools_rel, rel)]
        record[f"{tools_rel}:{name} equals {rel}'s"] = same[0] == same[1]
    return record


def _compile(cc: str, tree: Path, version: str, work: Path) -> tuple[Path, dict]:
    gen = work / "gen"
    _generate(gen)
    verbatim = _verbatim(tree, gen)
    shutil.copyfile(tree / "tools/testing/shared/autoconf.h", gen / "generated/autoconf.h")
    recipe = _recipe(tree, gen, version)
    objs = work / "obj"
    objs.mkdir()

    def one(item):
        name, args = item
        cmd = [cc, "-c", *args, "-o", str(objs / f"{name}.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return name, cmd, proc

    jobs = max(1, min(len(recipe["units"]), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, recipe["units"].items()))
    warnings = {}
    for name, cmd, proc in results:
        if proc.returncode != 0:
            raise _failed(f"compiling {name} from kernel {version}", cmd, proc.stderr, work)
        if proc.stderr.strip():
            warnings[name] = proc.stderr.strip().replace(str(tree), "<tree>")
    recipe["warnings"] = warnings
    recipe["verbatim"] = verbatim
    lib_tmp = work / f"{LIB_STEM}.so"
    cmd = [cc, "-o", str(lib_tmp), *sorted(str(p) for p in objs.glob("*.o")), *recipe["link"]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _failed(f"linking the kernel library ({version})", cmd, proc.stderr, work)
    return lib_tmp, recipe


def _failed(what: str, cmd: list[str], stderr: str, work: Path) -> KernelCodeUnavailable:
    """A one-line error naming the log (beside the build directory) that
    holds the command and the compiler's output."""
    log = work.parent / "build-error.log"
    log.write_text(" ".join(cmd) + "\n\n" + stderr)
    last = next((ln for ln in stderr.splitlines() if "error" in ln), "").strip()
    return KernelCodeUnavailable(f"{what} failed: {last[:300]} (command and output: {log})")


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically, mode as the umask gives (trackers.output)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _source_id(src: Path) -> str:
    st = src.stat()
    kind = "tarball" if src.is_file() else "tree"
    return f"{kind}:{src.resolve()}:{st.st_size if src.is_file() else ''}:{int(st.st_mtime)}"


def _prepare_tree(src: Path, vdir: Path, force: bool) -> tuple[Path, float]:
    """The kernel tree to compile from: src itself if it is a directory, else
    vdir/src extracted from the tarball (once; atomically).  Returns the tree
    and the seconds spent extracting (0 if none)."""
    if src.is_dir():
        _check_tree(src)
        return src, 0.0
    tree = vdir / "src"
    stamp = vdir / "src.json"
    sid = _source_id(src)
    if tree.is_dir() and not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("source_id") == sid:
                _check_tree(tree)
                return tree, 0.0
        except (ValueError, KernelCodeUnavailable):
            pass
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix("src"), dir=vdir))
    try:
        files = _extract(src, tmp)
        _check_tree(tmp)
        if tree.exists():                             # replace an old or foreign extraction
            old = Path(tempfile.mkdtemp(prefix="src.old-", dir=vdir))
            os.replace(tree, old / "src")
            shutil.rmtree(old, ignore_errors=True)
        os.chmod(tmp, directory_mode())              # mkdtemp made it 0700
        os.replace(tmp, tree)
    except (tarfile.TarError, EOFError) as exc:
        raise _unavailable(f"kernel source tarball {src} unreadable ({exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    write_json(stamp, {"source": str(src), "source_id": sid, "files": files,
                        "extract_seconds": round(seconds, 3)})
    return tree, seconds


def build(linux_src: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Build (or find in the cache) the library; returns its path.

    ``linux_src``: a kernel tree (>= 6.1) or a source tarball; default the
    newest ``/usr/src/linux-source-*.tar.xz``.  A tarball is streamed once
    and only the files the build reads are extracted.  ``force`` re-extracts
    and recompiles.  The library becomes the one :func:`current_library`
    names (what ``trackers.linux.library()`` loads).  Raises
    :class:`KernelCodeUnavailable` naming what is missing: the compiler,
    liburcu or the source."""
    t_start = time.perf_counter()
    for src_file in SOURCES:
        if not src_file.is_file():
            raise KernelCodeUnavailable(f"{src_file} is missing: install the package from its "
                                        f"source tree (pip install -e .) to build the "
                                        f"kernel code")
    src = Path(linux_src).expanduser() if linux_src is not None else default_source()
    if not src.exists():
        raise _unavailable(f"no kernel source at {src}")
    if not (src.is_dir() or _is_tarball(src)):
        raise _unavailable(f"{src} is neither a kernel tree nor a source tarball (.tar.xz)")
    version = tree_version(src) if src.is_dir() else known_tarball_version(src)
    root = cache_root()
    vdir = root / f"linux-{version}"
    try:
        vdir.mkdir(parents=True, exist_ok=True)
        with taking_turns(vdir):
            return _build_in(src, version, root, vdir, force, t_start)
    except KernelCodeUnavailable:
        raise
    except OSError as exc:
        raise cache_unwritable(root, exc) from None


def cache_unwritable(root: Path, exc: OSError) -> KernelCodeUnavailable:
    """An OSError writing the cache as one line naming the cache and how to
    choose another (no package is missing)."""
    where = f"${CACHE_ENV}={root}" if os.environ.get(CACHE_ENV) else str(root)
    why = exc.strerror or str(exc)
    return KernelCodeUnavailable(
        f"cannot write the kernel-library cache {where} ({why}"
        + (f": {exc.filename}" if exc.filename else "") + ")",
        fix=f"set ${CACHE_ENV} to a directory you can write")


def _build_in(src: Path, version: str, root: Path, vdir: Path, force: bool,
              t_start: float) -> Path:
    """build() once it holds vdir's lock: the cached library if its record
    matches the source and the file (:func:`damage`), else a new one."""
    sid = _source_id(src)
    key = fingerprint()
    lib = vdir / f"{LIB_STEM}-{key}.so"
    info_path = vdir / f"build-{key}.json"
    damaged = ""
    if lib.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = {}
        damaged = damage(lib, info)
        if info.get("source_id") == sid and not damaged and not force:
            _point_current(root, lib, info_path)
            return lib
        if damaged:
            print(f"tdx-trackers: the kernel library {lib} {damaged}: rebuilding it from "
                  f"{src}", file=sys.stderr, flush=True)

    cc = find_compiler()
    sweep_temporaries(vdir)
    work = Path(tempfile.mkdtemp(prefix=tmp_prefix("build"), dir=vdir))
    try:
        check_liburcu(cc, work)
        tree, extract_s = _prepare_tree(src, vdir, force)
        t0 = time.perf_counter()
        lib_tmp, recipe = _compile(cc, tree, version, work)
        compile_s = time.perf_counter() - t0
        seal(lib_tmp)
        info = {
            "version": version, "source": str(src.resolve()), "source_id": sid,
            "tree": str(tree), "compiler": cc,
            "compiler_version": _compiler_version(cc), "key": key,
            "library": str(lib), **library_record(lib_tmp),
            "sources": [str(p) for p in SOURCES],
            "units": {k: [a.replace(str(tree), "<tree>").replace(str(work), "<work>")
                          for a in v] for k, v in recipe["units"].items()},
            "link": recipe["link"], "warnings": recipe["warnings"],
            "verbatim": recipe["verbatim"],
            "extract_seconds": round(extract_s, 3), "compile_seconds": round(compile_s, 3),
            "total_seconds": round(time.perf_counter() - t_start, 3),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "built_unix": time.time(),
        }
        write_json(info_path, info)
        os.replace(lib_tmp, lib)                      # the library appears whole, last
        _point_current(root, lib, info_path)
        if damaged:
            _repairs.append(f"rebuilt the kernel library {lib} from {src} in "
                            f"{time.perf_counter() - t_start:.0f} s (the cached one {damaged})")
            print(f"tdx-trackers: {_repairs[-1]}", file=sys.stderr, flush=True)
        return lib
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: what :func:`build` rebuilt in this process because the cached library was damaged
_repairs: list[str] = []


def repaired() -> str:
    """What :func:`build` last rebuilt in this process because the cached
    library did not match its record ("rebuilt the kernel library X from SRC
    in N s (the cached one is cut short: ...)"), or ""."""
    return _repairs[-1] if _repairs else ""


#: a temporary directory this old is a killed build's even if its pid lives
STALE_SECONDS = 3600


def tmp_prefix(kind: str) -> str:
    return f"{kind}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_temporaries(vdir: Path) -> None:
    """Remove what killed builds left: temporary directories (and clear.c's
    temporary libraries) whose process is gone (or that are over an hour
    old), and replaced source trees."""
    now = time.time()
    for p in vdir.glob("*.tmp-*"):
        m = re.search(r"\.tmp-(\d+)-", p.name)
        try:
            stale = (m is None or not _pid_alive(int(m.group(1)))
                     or now - p.stat().st_mtime > STALE_SECONDS)
            if stale and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif stale:
                p.unlink()
        except OSError:
            pass
    for p in vdir.glob("src.old-*"):
        shutil.rmtree(p, ignore_errors=True)


def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return ""
    return out.splitlines()[0] if out else ""


def _point_current(root: Path, lib: Path, info_path: Path) -> None:
    """current.json names lib (written only if it names another: a cache
    that cannot be written still serves the library it holds)."""
    pointer = {"library": str(lib), "info": str(info_path)}
    try:
        if json.loads((root / "current.json").read_text()) == pointer:
            return
    except (OSError, ValueError):
        pass
    write_json(root / "current.json", pointer)


def current_library() -> tuple[Path, dict]:
    """The library the last :func:`build` chose and its build record.

    Raises :class:`KernelCodeUnavailable` if none was built, if it is gone,
    or if it was built from other C sources (:data:`SOURCES`) than this
    package's, and :class:`KernelLibraryDamaged` if the file does not hold
    what its build wrote (size and sha256: :func:`damage`): never load that
    one."""
    pointer = cache_root() / "current.json"
    try:
        cur = json.loads(pointer.read_text())
        lib, info_path = Path(cur["library"]), Path(cur["info"])
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise _unavailable(f"the kernel library is not built (no {pointer}); "
                           f"build it with `tdx-trackers kernel-build`") from None
    except (ValueError, KeyError, OSError) as exc:
        raise _unavailable(f"the kernel library record {pointer} is unreadable ({exc}); "
                           f"rebuild with `tdx-trackers kernel-build`") from None
    if all(p.is_file() for p in SOURCES) and info.get("key") != fingerprint():
        # another checkout (other C sources or recipe) built last into this
        # cache: the build of this package's sources, for the same kernel, if kept
        own = (lib.parent / f"libtdxkernel-{fingerprint()}.so",
               lib.parent / f"build-{fingerprint()}.json")
        if not all(p.is_file() for p in own):
            raise _unavailable(f"the kernel library {lib} was built from other C sources "
                               f"or another recipe; rebuild with `tdx-trackers kernel-build`")
        lib, info = own[0], json.loads(own[1].read_text())
    if not lib.is_file():
        raise _unavailable(f"the kernel library {lib} is gone; "
                           f"rebuild with `tdx-trackers kernel-build`")
    what = damage(lib, info)
    if what:
        raise KernelLibraryDamaged(lib, info, what)
    return lib, info
