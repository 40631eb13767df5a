#!/usr/bin/env python3
"""Checks a cluster run of examples/node.rs: the nodes' records and JSON summaries.

    python3 examples/cluster_check.py OUT MODE UNHANDLED_WINDOW_MS SIZE ID...

Shared by examples/local_cluster.sh and examples/netns_cluster.sh, which describe the
rules in their headers (local_cluster.sh's KILL_EVERY paragraph for the rules across
incarnations). MODE is `plain`, `cut` or `kill`; SIZE is the payload size of the data
messages (which link kind carries them); the IDs are the nodes. OUT holds, per node ID
and incarnation INC (0, 1...): node-ID.INC.rec (`--record`), node-ID.INC.json
(`--summary-json`, written by a process that exited), and:

- OUT/kills: a line `ID INC KILLED_AT_MS STATUS` per incarnation killed (may be empty);
- in `cut` mode, OUT/proxy-*.log: the fault proxies' counters (their cuts are summed).

Prints a table per (sender, receiver) and `ok: ...`, or the problems and `FAILED: ...`
with exit status 1.
"""
import bisect, glob, json, os, re, sys
from collections import defaultdict

out, mode, window, size, ids = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
# The link of the data messages: 16 bytes of header and the payload, large above 64 KiB.
data_kind = "large" if size + 16 > 64 * 1024 else "small"
problems = []

# --- incarnations, their records and summaries
kills = {}  # (node, inc) -> kill ms
for line in open(f"{out}/kills"):
    node, n, at, _status = line.split()
    kills[(node, int(n))] = int(at)

class Incarnation:
    def __init__(self, node, n):
        self.node, self.n = node, n
        self.killed_at = kills.get((node, n))
        self.run = None
        self.start_ms = None
        self.ended = False
        self.outcomes = defaultdict(list)   # peer -> [(first, last, kind, first_ms, last_ms)]
        self.received = defaultdict(list)   # (from, run) -> [seq]
        self.events = defaultdict(list)  # peer -> [ms] of its data link's peer_restarted
        path = f"{out}/node-{node}.{n}.json"
        self.summary = json.load(open(path)) if os.path.exists(path) else None
        for line in open(f"{out}/node-{node}.{n}.rec"):
            f = line.split()
            if not f or not line.endswith("\n"):
                continue  # a line cut short by the kill
            if f[0] == "r":
                self.received[(f[1], f[2])].append(int(f[3]))
            elif f[0] == "o":
                self.outcomes[f[1]].append((int(f[2]), int(f[3]), f[4], int(f[5]), int(f[6])))
            elif f[0] == "start":
                self.run, self.start_ms = f[2], int(f[3])
            elif f[0] == "end":
                self.ended = True
            elif f[0] == "event" and f[2] == data_kind:
                self.events[f[1]].append(int(f[4]))
        if self.run is None:
            problems.append(f"node-{node}.{n}: its record has no start line")

incs = {}
for node in ids:
    files = glob.glob(f"{out}/node-{node}.*.rec")
    ns = sorted(int(re.search(r"\.(\d+)\.rec$", p).group(1)) for p in files)
    incs[node] = [Incarnation(node, n) for n in ns]
    for i in incs[node]:
        if i.killed_at is None and not i.ended:
            problems.append(f"node-{node}.{i.n}: neither killed nor ended")
        if i.killed_at is None and i.summary is None:
            problems.append(f"node-{node}.{i.n}: no summary")
finals = {node: incs[node][-1] for node in ids}

# --- per sender incarnation and receiver: the records, seq by seq
class Pair:
    def __init__(self):
        self.__dict__.update(dict.fromkeys(
            "outcomes acked written received dup ooo lost restarted restarted_received "
            "unhandled unknown failed failed_received".split(), 0))
        self.unhandled_by_kill = defaultdict(int)

pairs = defaultdict(Pair)
max_distance = 0
for s in ids:
    for r in ids:
        if s == r:
            continue
        p = pairs[(s, r)]
        for sender in incs[s]:
            ranges = sorted(sender.outcomes.get(r, []))
            firsts = [x[0] for x in ranges]

            def outcome(seq):
                i = bisect.bisect_right(firsts, seq) - 1
                if i >= 0 and ranges[i][0] <= seq <= ranges[i][1]:
                    return ranges[i]
                return None

            # Everything this run's messages reached, in incarnation order.
            seen = {}  # seq -> receiving incarnation
            order = []  # (seq, incarnation) in arrival order across incarnations
            for recv in incs[r]:
                for seq in recv.received.get((s, sender.run), []):
                    if seq in seen:
                        p.dup += 1
                        if p.dup <= 5:
                            problems.append(f"node-{s}.{sender.n} -> node-{r}: seq {seq} received "
                                            f"by incarnation {seen[seq].n} and again by {recv.n}")
                        continue
                    if order and seq < order[-1][0]:
                        p.ooo += 1
                        if p.ooo <= 5:
                            problems.append(f"node-{s}.{sender.n} -> node-{r}: seq {seq} after "
                                            f"{order[-1][0]} (incarnation {recv.n})")
                    seen[seq] = recv
                    order.append((seq, recv))
            # What was received, by its outcome at the sender.
            for seq, recv in seen.items():
                o = outcome(seq)
                p.received += 1
                if o is None:
                    if sender.killed_at is None:
                        problems.append(f"node-{s}.{sender.n} -> node-{r}: seq {seq} received "
                                        f"but has no outcome, and its sender was not killed")
                    p.unknown += 1
                elif o[2] == "peer_restarted":
                    p.restarted_received += 1
                    if recv.killed_at is None:
                        problems.append(f"node-{s}.{sender.n} -> node-{r}: seq {seq} failed "
                                        f"peer_restarted but incarnation {recv.n}, not killed, got it")
                elif o[2] not in ("acknowledged", "written"):
                    p.failed_received += 1
                    if o[2] not in ("expired", "connection_lost", "closed"):
                        problems.append(f"node-{s}.{sender.n} -> node-{r}: seq {seq} failed "
                                        f"{o[2]} (never written) but was received")
            # What the sender saw delivered and no incarnation received.
            recv_seqs = sorted(seen)
            restarted = sorted(x[0] for x in ranges if x[2] == "peer_restarted")
            restarted_last = {x[0]: x[1] for x in ranges if x[2] == "peer_restarted"}
            for first, last, kind, first_ms, last_ms in ranges:
                n = last - first + 1
                p.outcomes += n
                if kind == "peer_restarted":
                    p.restarted += n
                    continue
                if kind not in ("acknowledged", "written"):
                    p.failed += n
                    continue
                if kind == "acknowledged":
                    p.acked += n
                else:
                    p.written += n
                for seq in range(first, last + 1):
                    if seq in seen:
                        continue
                    i = bisect.bisect_left(recv_seqs, seq)
                    prev = recv_seqs[i - 1] if i > 0 else -1
                    prev_n = seen[prev].n if i > 0 else -1
                    next_n = seen[recv_seqs[i]].n if i < len(recv_seqs) else None
                    # (b): no peer_restarted failure between the last recorded one and it.
                    j = bisect.bisect_right(restarted, seq) - 1
                    separated = j >= 0 and restarted_last[restarted[j]] > prev
                    excuse = None
                    if mode == "kill" and kind == "acknowledged" and not separated:
                        for recv in incs[r]:  # (a) and (c)
                            if (recv.killed_at is None or recv.n < prev_n
                                    or (next_n is not None and recv.n >= next_n)):
                                continue
                            found = [t for t in sender.events.get(r, []) if t >= recv.killed_at]
                            until = min(found) if found else recv.killed_at + window
                            if recv.killed_at - window <= last_ms and first_ms <= until:
                                excuse = recv
                                break
                    if excuse is not None:
                        p.unhandled += 1
                        p.unhandled_by_kill[(r, excuse.n)] += 1
                        distance = max(abs(first_ms - excuse.killed_at), abs(last_ms - excuse.killed_at))
                        max_distance = max(max_distance, distance)
                    else:
                        p.lost += 1
                        if p.lost <= 5:
                            problems.append(
                                f"node-{s}.{sender.n} -> node-{r}: seq {seq} {kind} "
                                f"(seen {first_ms}-{last_ms} ms) but received by no incarnation "
                                f"(previous received: {prev} by incarnation {prev_n}, next by "
                                f"{next_n}; peer_restarted before it: {separated})")
            # A sender that ended: every message it accepted has its outcome recorded.
            if sender.summary is not None:
                sp = sender.summary["peers"].get(r)
                known = sum(x[1] - x[0] + 1 for x in ranges)
                if sp is not None and known != sp["accepted"] - sp["pending"]:
                    problems.append(f"node-{s}.{sender.n} -> node-{r}: {known} outcomes recorded, "
                                    f"summary: {sp['accepted']} accepted, {sp['pending']} pending")
        for kind, n in (("lost", p.lost), ("duplicated", p.dup), ("out of order", p.ooo)):
            if n:
                problems.append(f"node-{s} -> node-{r}: {n} messages {kind}")
        if p.acked + p.written == 0:
            problems.append(f"node-{s} -> node-{r}: nothing delivered")

# --- the final incarnations' summaries
for s in ids:
    for r in ids:
        if s == r:
            continue
        link = f"node-{s} -> node-{r}"
        sent = finals[s].summary["peers"].get(r) if finals[s].summary else None
        got = finals[r].summary["senders"].get(s) if finals[r].summary else None
        if sent is None or got is None:
            problems.append(f"{link}: missing from the final summaries")
            continue
        pairs[(s, r)].gaps = got["gaps"]
        if got["duplicates"] or got["out_of_order"]:
            problems.append(f"{link}: summary: {got['duplicates']} duplicates, "
                            f"{got['out_of_order']} out of order")
        if mode != "kill":
            # Nothing restarted: the only missing sequence numbers are the messages that
            # failed (overloaded, expired), and everything delivered arrived.
            delivered = sent["acknowledged"] + sent["written"]
            failed = sum(sent["failed"].values())
            maybe = sum(sent["failed"].get(k, 0) for k in ("expired", "connection_lost", "closed"))
            if not delivered <= got["received"] <= delivered + maybe:
                problems.append(f"{link}: summary: {delivered} delivered but {got['received']} received")
            if got["gaps"] != sent["accepted"] - got["received"] or got["gaps"] > failed:
                problems.append(f"{link}: summary: {got['gaps']} gaps, {failed} failed")
            if len(got["runs"]) != 1:
                problems.append(f"{link}: {len(got['runs'])} runs, expected 1")
        if not got["done"] or sent["done"] not in ("acknowledged", "written"):
            problems.append(f"{link}: the final done did not arrive ({sent['done']})")

print()
print(f"{'sender -> receiver':<20}{'outcomes':>9}{'acked':>9}{'written':>8}{'received':>9}"
      f"{'lost':>6}{'dup':>5}{'ooo':>5}{'gaps':>6}{'restarted':>10}{'(recv)':>7}"
      f"{'unhandled':>10}{'unknown':>8}{'failed':>7}")
total = Pair()
for (s, r), p in sorted(pairs.items()):
    print(f"{f'node-{s} -> node-{r}':<20}{p.outcomes:>9}{p.acked:>9}{p.written:>8}{p.received:>9}"
          f"{p.lost:>6}{p.dup:>5}{p.ooo:>5}{getattr(p, 'gaps', '-'):>6}{p.restarted:>10}"
          f"{p.restarted_received:>7}{p.unhandled:>10}{p.unknown:>8}{p.failed:>7}")
    for k in total.__dict__:
        if isinstance(getattr(p, k), int):
            setattr(total, k, getattr(total, k) + getattr(p, k))
print("(outcomes: recorded by the senders, all incarnations; restarted: failed peer_restarted, "
      "(recv) of which the killed receiver had recorded; unhandled: acknowledged, not recorded "
      "by a receiver killed right after; unknown: received, no outcome recorded, the sender was "
      "killed)")
print()
for node in ids:
    f = finals[node].summary
    send, recv = f["limits"]["send"], f["limits"]["receive"]
    print(f"node-{node} ({len(incs[node])} incarnations): final outcomes {f['outcomes']}; "
          f"inbound duplicates {f['inbound']['duplicates']} connections {f['inbound']['connections']} "
          f"peer_restarts {f['inbound']['peer_restarts']}; links replayed "
          f"{sum(l['replayed'] for l in f['links'])} peer_restarts "
          f"{sum(l['peer_restarts'] for l in f['links'])}; reserve peak send {send['global_peak']} B, "
          f"receive {recv['global_peak']} B")
    for direction in (send, recv):
        if direction["global_peak"] > direction["global_reserve"]:
            problems.append(f"node-{node}: reserve in use above its limit")
    if f["finished"] != "all peers done":
        problems.append(f"node-{node}: finished by {f['finished']}")

summary = (f"{total.outcomes} messages with an outcome, {total.acked} acknowledged, "
           f"{total.written} written, {total.received} received, lost {total.lost}, "
           f"duplicated {total.dup}, out of order {total.ooo}")
if mode == "cut":
    cuts = 0
    for path in sorted(glob.glob(f"{out}/proxy-*.log")):
        counters = [l for l in open(path) if " cuts " in l]
        cuts += int(counters[-1].split(" cuts ")[1].split()[0]) if counters else 0
    print(f"proxies: {cuts} cuts in all")
    summary += f"; {cuts} cuts"
    if cuts == 0:
        problems.append("the proxies cut no connection")
if mode == "kill":
    by_kill = defaultdict(int)
    for p in pairs.values():
        for k, n in p.unhandled_by_kill.items():
            by_kill[k] += n
    per_kill = ", ".join(f"node-{r}.{n}: {c}" for (r, n), c in sorted(by_kill.items())) or "none"
    print(f"kills: {len(kills)}; unhandled@kill per killed incarnation: {per_kill}; "
          f"largest distance to the kill {max_distance} ms (window {window} ms)")
    summary += (f"; {len(kills)} kills, {total.restarted} peer_restarted "
                f"({total.restarted_received} of them received by the killed incarnation), "
                f"{total.unhandled} acknowledged but unhandled at a kill, {total.unknown} unknown")
    if not kills:
        problems.append("no node was killed (KILL_EVERY too large for DURATION?)")
print()
if problems:
    for p in problems:
        print("FAILED:", p)
    print("FAILED:", summary)
    sys.exit(1)
print("ok:", summary)
