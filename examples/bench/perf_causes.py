#!/usr/bin/env python3
"""Self time per process (or thread) of a `perf record --call-graph dwarf` profile,
grouped by cause, with the allocator, memmove and clock reads charged to their callers.

    perf script -i /tmp/perf.data -F comm,pid,tid,time,ip,sym --no-inline > /tmp/perf.txt
    examples/bench/perf_causes.py /tmp/perf.txt                  # per process
    examples/bench/perf_causes.py /tmp/perf.txt --by-thread      # per thread
    examples/bench/perf_causes.py /tmp/perf.txt --incl Inbound::drive --incl decode_serde
    examples/bench/perf_causes.py /tmp/perf.txt --callers-of __send --depth 3

Percentages are of the process's (or thread's) own samples. A sample whose leaf is in
the kernel is charged to the first user-space frame (the syscall wrapper, or the
allocator when it is a page fault under malloc). "Callers" are the first two frames
outside the allocator, memmove, the clock and the standard library's wrappers
(drop_in_place, RawVec, Arc::drop_slow, ...). docs/performance.md ("Profiling") says
how to record.
"""
import argparse
import collections
import re

ALLOC = re.compile(
    r"^(_int_malloc|_int_free|malloc|cfree|free|__libc_free|__libc_malloc|malloc_consolidate"
    r"|unlink_chunk|_int_realloc|realloc|__libc_realloc|sysmalloc|tcache_\w+|_int_memalign"
    r"|__rust_alloc|__rust_dealloc|__rust_realloc|__rustc::__rust_\w+|calloc|__libc_calloc"
    r"|_int_free_\w+|munmap_chunk|mremap_chunk|__munmap|__mmap|mmap64|__madvise|madvise"
    r"|systrim|grow_heap|new_heap|heap_trim|shrink_heap|alloc_perturb)$"
)
MOVE = re.compile(r"(memmove|memcpy|memset)")
CLOCK = re.compile(r"(clock_gettime|__vdso|Instant::now|SystemTime::now|Timespec>::now)")
LOCK = re.compile(r"(pthread_mutex|pthread_rwlock|futex::Mutex|futex::RwLock|parking_lot|__lll_)")
WRAPPER = re.compile(
    r"(^<?alloc::|drop_in_place|^<?core::|__rust_|^<?bytes::bytes_mut::|^bytes::bytes::(shared|promotable)_"
    r"|RawVec|raw_vec|drop_slow|do_reserve_and_handle|finish_grow|^<?std::sys::|^\[unknown\]"
    r"|^hashbrown::raw|^std::thread::local|LocalKey)"
)
PLUMBING = re.compile(
    r"^(<&|<?std::|<?mio::|<?tokio::io|<?tokio::runtime::(driver|io|scheduler::current_thread::Handle)"
    r"|<?core::|<?alloc::|<?tokio_util::util)"
)


def samples(path):
    """(comm, pid, tid, time), [(is_kernel, symbol)] leaf first."""
    head, frames = None, []
    for line in open(path, errors="replace"):
        if not line.strip():
            continue
        if line[0] not in "\t ":
            if head:
                yield head, frames
            m = re.match(r"(.*?)\s+(\d+)/(\d+)\s+([\d.]+):", line)
            head, frames = (m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))), []
            continue
        parts = line.strip().split(None, 1)
        addr, sym = parts[0], parts[1] if len(parts) > 1 else "[unknown]"
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        sym = re.sub(r"@GLIBC[\w.]*", "", sym)
        sym = re.sub(r"\.(constprop|isra|part|cold)\.\d+", "", sym)
        kernel = len(addr) == 16 and addr.startswith("ffffffff") and addr != "ffffffffffffffff"
        frames.append((kernel, sym))
    if head:
        yield head, frames


def short(sym):
    return sym.replace("{{closure}}", "{cl}")[:110]


def user_frames(frames):
    return [s for k, s in frames if not k]


def callers(frames, inside):
    """The first two user frames after the leaf ones matching `inside`, wrappers skipped."""
    users = user_frames(frames)
    i = 0
    while i < len(users) and inside(users[i]):
        i += 1
    out = [short(s) for s in users[i:] if not WRAPPER.search(s)][:2]
    return " <- ".join(out) or "?"


def cause(frames):
    kernel_leaf = frames[0][0]
    users = user_frames(frames)
    leaf = users[0] if users else "[kernel only]"
    if ALLOC.match(leaf):
        return "allocator", callers(frames, lambda s: bool(ALLOC.match(s)))
    if MOVE.search(leaf):
        return "memmove/memcpy", callers(frames, lambda s: bool(MOVE.search(s)))
    if kernel_leaf:
        return "kernel (by syscall)", short(leaf)
    if CLOCK.search(leaf):
        return "clock reads", callers(frames, lambda s: bool(CLOCK.search(s)))
    if LOCK.search(leaf):
        return "locks", callers(frames, lambda s: bool(LOCK.search(s)))
    for name, pattern in (
        ("actix (mailbox, context)", r"^<?actix::"),
        ("tokio/futures runtime", r"^<?(tokio|actix_rt|futures|futures_util|futures_core)::"),
        ("crc32", r"crc32"),
        ("serde/postcard", r"postcard|serde"),
        ("internode code", r"^<?internode::"),
        ("bench harness", r"^<?bench::"),
        ("bytes (refcounts, views)", r"^<?bytes::"),
    ):
        if re.search(pattern, leaf):
            return name, short(leaf)
    return "other", short(leaf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("script", help="output of perf script -F comm,pid,tid,time,ip,sym --no-inline")
    ap.add_argument("--by-thread", action="store_true", help="split by thread, not by process")
    ap.add_argument("--pids", help="only these pids (comma-separated)")
    ap.add_argument("--from", dest="t0", type=float, help="only samples from this perf timestamp")
    ap.add_argument("--to", dest="t1", type=float, help="only samples up to this perf timestamp")
    ap.add_argument("--top", type=int, default=15, help="self-time entries to list")
    ap.add_argument("--callers", type=int, default=8, help="callers to list per cause")
    ap.add_argument("--incl", action="append", default=[], help="also print the inclusive share of frames containing this")
    ap.add_argument("--callers-of", action="append", default=[], help="also print who calls leaf (user) symbols containing this")
    ap.add_argument("--depth", type=int, default=3, help="frames shown by --callers-of")
    a = ap.parse_args()
    pids = {int(p) for p in a.pids.split(",")} if a.pids else None

    def new():
        return {
            "n": 0, "names": collections.Counter(), "self": collections.Counter(),
            "cause": collections.Counter(), "by": collections.defaultdict(collections.Counter),
            "incl": collections.Counter(), "of": collections.defaultdict(collections.Counter),
        }

    per = collections.defaultdict(new)
    for (comm, pid, tid, t), frames in samples(a.script):
        if not frames or (pids and pid not in pids) or (a.t0 and t < a.t0) or (a.t1 and t > a.t1):
            continue
        p = per[(pid, tid) if a.by_thread else (pid,)]
        p["n"] += 1
        p["names"][comm] += 1
        users = user_frames(frames)
        p["self"][("[k] " if frames[0][0] else "") + short(users[0] if users else frames[0][1])] += 1
        c, who = cause(frames)
        p["cause"][c] += 1
        p["by"][c][who] += 1
        for w in a.incl:
            if any(w in s for _, s in frames):
                p["incl"][w] += 1
        for w in a.callers_of:
            if users and w in users[0]:
                chain = [short(s)[:80] for s in users[1:] if not PLUMBING.search(s)]
                p["of"][w][" <- ".join(chain[: a.depth])] += 1

    for key, p in sorted(per.items(), key=lambda kv: -kv[1]["n"]):
        n = p["n"]
        name = p["names"].most_common(1)[0][0]
        print(f"=== {'pid/tid ' if a.by_thread else 'pid '}{'/'.join(map(str, key))} ({name}): {n} samples")
        if n < 100:
            continue
        for w in a.incl:
            print(f"  incl {100 * p['incl'][w] / n:5.1f}  {w}")
        for w, chains in p["of"].items():
            print(f"  callers of {w}:")
            for chain, v in chains.most_common(6):
                print(f"     {100 * v / n:5.1f}  {chain}")
        print("  -- self --")
        for s, v in p["self"].most_common(a.top):
            print(f"  {100 * v / n:5.1f}  {s}")
        print("  -- causes --")
        for c, v in p["cause"].most_common():
            print(f"  {100 * v / n:5.1f}  {c}")
            for who, u in p["by"][c].most_common(a.callers):
                if 100 * u / n >= 0.4:
                    print(f"         {100 * u / n:5.1f}  {who}")


if __name__ == "__main__":
    main()
