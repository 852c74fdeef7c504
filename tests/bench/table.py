#!/usr/bin/env python3
"""table.py RESULTS: the table of tests/bench.sh from its raw "round label figure value unit"
lines: medians per system, ratios dfs/MooseFS and dfs/bindfs ("how many times better dfs
is": rate ratio for rates, inverse time ratio for durations), the issue's targets. Usable
on the raw file of a run that was stopped early."""
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 5]
vals, units = {}, {}
for r, label, fig, v, unit in rows:
    vals.setdefault(fig, {}).setdefault(label, []).append(float(v))
    units[fig] = unit
LOWER = {"s", "MiB", "s/GiB"}  # smaller is better
TARGET = {"seq_write_1M": 1.3, "seq_read_1M": 1.2, "rand_read_4k": 2, "rand_write_4k": 1.5,
          "small_create": 3, "tree_extract": 4, "tree_cp_r": 4, "small_stat": 1.5,
          "small_delete": 2, "tree_rm_r": 2, "cpu_s_per_gib": 1, "mount_rss_peak": 2}
ORDER = ["seq_write_1M", "seq_read_1M", "rand_read_4k", "rand_write_4k", "small_create",
         "small_ls_l", "small_stat", "small_read", "small_delete", "tree_extract",
         "tree_extract_sync", "tree_cp_r", "tree_rm_r", "cpu_s_per_gib", "mount_rss_peak",
         "daemons_rss_peak"]
def med(fig, label):
    xs = vals.get(fig, {}).get(label)
    return statistics.median(xs) if xs else None
def ratio(fig, a, b):
    if a is None or b is None or a == 0 or b == 0:
        return None
    return b / a if units[fig] in LOWER else a / b
fmt = lambda x: "-" if x is None else (f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}")
head = ["figure", "unit", "dfs", "MooseFS", "bindfs", "dfs/MooseFS", "dfs/bindfs", "target", "met",
        "dfs strict", "strict/MooseFS"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for fig in ORDER:
    if fig not in vals:
        continue
    d, m, b = med(fig, "dfs"), med(fig, "moosefs"), med(fig, "bindfs")
    rm, rb = ratio(fig, d, m), ratio(fig, d, b)
    t = TARGET.get(fig)
    met = "-" if t is None or rm is None else ("yes" if rm >= t else "no")
    st = med(fig, "dfs-strict")
    print(f"| {fig} | {units[fig]} | {fmt(d)} | {fmt(m)} | {fmt(b)} | {fmt(rm)} | {fmt(rb)} | "
          f"{'-' if t is None else '≥ %g×' % t} | {met} | {fmt(st)} | {fmt(ratio(fig, st, m))} |")
