#!/usr/bin/env python3
# Samples the embedded cluster's processes while a case of bench/scale-out.sh runs (SCALE_OUT_PGSTAT): every 0.5 s each
# child of the postmaster's CPU ticks from /proc, every 2 s pg_stat_activity's name for each pid (application_name, or the
# backend_type for background processes). On SIGTERM prints CPU seconds per name (the last reading of each pid minus its
# first, pids that appeared during the case counted from zero), so that what a case cost PostgreSQL can be split by who.
import os, signal, subprocess, sys, time, collections
pm, psql = int(sys.argv[1]), sys.argv[2:]
hz = os.sysconf("SC_CLK_TCK")
first, last, names, seen_at_start = {}, {}, {}, None
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read().rsplit(")", 1)[1].split()
        return int(s[11]) + int(s[12])
    except OSError:
        return None
def children():
    try:
        with open(f"/proc/{pm}/task/{pm}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []
def cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ").strip()
    except OSError:
        return "?"
n = 0
while not stop:
    for c in children():
        t = ticks(c)
        if t is None:
            continue
        if c not in first:
            first[c] = t if seen_at_start is None else 0
        last[c] = t
        if c not in names:
            names[c] = cmd(c)
    seen_at_start = True
    if n % 4 == 0:
        out = subprocess.run(psql + ["-At", "-F", "|", "-c", "select pid, coalesce(nullif(application_name, ''), backend_type), backend_type from pg_stat_activity"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid, app, bt = line.split("|", 2)
            names[int(pid)] = app if bt == "client backend" else bt
    n += 1
    time.sleep(0.5)
by = collections.Counter()
count = collections.Counter()
for p in last:
    name = names.get(p, "?")
    if name.startswith("postgres:"):
        name = " ".join(name.split()[:3])
    by[name] += (last[p] - first[p]) / hz
    count[name] += 1
for name, s in by.most_common():
    print("    %-40s %6.2f s  (%d processes)" % (name, s, count[name]))
