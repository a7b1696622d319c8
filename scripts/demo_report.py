#!/usr/bin/env python3
"""Prints the demo's report from a replay's input and output.

Usage: demo_report.py IN.jsonl OUT.jsonl WALL_SECONDS [RESUMED [STORE]]

IN is what `converge replay` read (the storm), OUT what it wrote (decisions,
instance events, summaries; docs/replay-format.md). The report counts the
actions, their final outcomes, the instances of each level, the summaries,
and the notifications a host would send with and without converge: without,
one per notice action; with, one per notice action whose final outcome is
execute, plus one per summary.

RESUMED is the number of actions the replay found decided already in its
store (STORE, for the report), by an earlier run: their decision lines are
the stored decisions, and the instances and summaries that came with them
were made by that run, not this one, so this run's reduction is not told.
"""

import collections
import json
import sys


def main(argv):
    if not 3 <= len(argv) <= 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    inp, out, wall = argv[0], argv[1], float(argv[2])
    resumed = int(argv[3]) if len(argv) > 3 else 0
    store = argv[4] if len(argv) > 4 else ""

    plugin = {}
    businesses, strategies = set(), set()
    first = last = None
    with open(inp, encoding="utf-8") as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("type") != "action":
                continue
            plugin[ev["id"]] = ev.get("plugin_type", "")
            businesses.add(ev.get("bk_biz_id", 0))
            strategies.add(ev.get("strategy_id", 0))
            first = ev["time"] if first is None else first
            last = ev["time"]

    final = {}
    decisions = 0
    instances = collections.Counter()
    summaries = collections.Counter()
    summarized = 0
    with open(out, encoding="utf-8") as f:
        for line in f:
            ev = json.loads(line)
            kind = ev["type"]
            if kind == "decision":
                decisions += 1
                final[ev["action_id"]] = ev["outcome"]
            elif kind == "instance":
                instances[(ev["converge_type"], ev["event"])] += 1
            elif kind == "summary":
                summaries[ev["converge_type"]] += 1
                summarized += len(ev["action_ids"])

    outcomes = collections.Counter(final.values())
    notices = [i for i, p in plugin.items() if p == "notice"]
    without = len(notices)
    sent = sum(1 for i in notices if final.get(i) == "execute")
    with_converge = sent + sum(summaries.values())
    reduction = 100.0 * (1 - with_converge / without) if without else 0.0
    span = (last - first) if first is not None else 0

    def row(label, value):
        print(f"  {label:<40} {value}")

    print("converge demo: an alert storm replayed on a virtual clock")
    row("actions in", f"{len(plugin):,} over {span / 60:.0f} min of virtual time "
        f"({len(businesses)} businesses, {len(strategies)} strategies)")
    if store:
        row("store", store)
    if resumed:
        row("resumed", f"{resumed:,} of {len(plugin):,} actions were decided "
            "by an earlier run: their stored decisions are replayed, not "
            "taken again")
    row("decisions written", f"{decisions:,}")
    for name in ("execute", "skip", "sleep", "approval", "shield"):
        row(f"  final outcome {name}", f"{outcomes.get(name, 0):,}")
    # After a resume, the instances and summaries of the resumed actions
    # are the earlier run's: this run's counts are told as such, and the
    # reduction, which needs them all, is not told.
    this_run = ", this run" if resumed else ""
    for level, label in (("action", "first level"),
                         ("converge", "second level")):
        if not resumed:
            label += " (per alert)" if level == "action" else " (per business)"
        row(f"instances, {label}{this_run}",
            f"{instances[(level, 'created')]:,} created, "
            f"{instances[(level, 'hidden')]:,} hidden, "
            f"{instances[(level, 'ended')]:,} ended")
    row(f"summaries sent{this_run}",
        f"{summaries['action']:,} per alert, {summaries['converge']:,} per "
        f"business, reporting {summarized:,} suppressed actions")
    row("notifications without converge", f"{without:,} (one per notice)")
    if resumed:
        row("notifications with converge", "not told: the earlier run made "
            "the instances and summaries of the resumed actions (RESUME=0 "
            "starts over)")
    else:
        row("notifications with converge",
            f"{with_converge:,} ({sent:,} notices + "
            f"{sum(summaries.values()):,} summaries)")
        row("reduction", f"{reduction:.1f}% fewer notifications")
    rate = len(plugin) / wall if wall > 0 else 0
    row("wall time", f"{wall:.2f} s ({rate:,.0f} actions/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
