#!/usr/bin/env python3
"""Generates a deterministic alert storm as replay JSON lines.

Every line is one action with the converge_config it is submitted with, in
the format converge::json::ParseActionEvent reads:

  {"type":"action","id":1,"time":1700000003,"bk_biz_id":2,"strategy_id":101,
   "signal":"abnormal","alert_level":1,"plugin_type":"notice",...,
   "context":{...},"converge_config":{...}}

The storm: 3 businesses, 8 strategies, a few dozen hosts. Incidents (bursts)
hit one strategy on a group of hosts; every host raises an alert that is
re-notified while the incident lasts and usually recovers at the end. Each
firing produces one notice action per (notice way, receiver) of the strategy's
notice group, and, for strategies with a webhook, a webhook action. Some
background alerts are spread over the whole hour and a few actions are
shielded.

Rules:
  notice   collect,          upstream's default notice config with its
           business summary (collect_alarm); replay it with the bkmonitor
           profile for upstream's forced windows
  webhook  skip_when_exceed, timedelta 300, count 3, alert_info self
           or defense,       timedelta 600, count 5, alert_info self
           (chosen per strategy)

The output only depends on the arguments (fixed seed, Python 3 stdlib only):
ids are 1..N in time order and times never decrease.

Usage: gen_storm.py [--actions N] [--seconds S] [--seed K] OUT.jsonl
"""

import argparse
import json
import random
import sys

START = 1700000000  # 2023-11-14 22:13:20 UTC

BUSINESSES = [2, 3, 5]

# strategy id, business, alert name, alert level, webhook rule (or None),
# hosts prefix, notice ways, receivers
STRATEGIES = [
    (101, 2, "CPU usage high", 2, "skip_when_exceed", "web", ["mail", "weixin"], ["alice", "bob"]),
    (102, 2, "Disk almost full", 2, None, "web", ["mail"], ["alice"]),
    (103, 2, "HTTP 5xx rate", 1, "defense", "web", ["weixin", "sms"], ["oncall-web"]),
    (201, 3, "MySQL replication lag", 1, "defense", "db", ["sms", "voice"], ["dba"]),
    (202, 3, "Slow queries", 3, "skip_when_exceed", "db", ["mail"], ["dba", "carol"]),
    (301, 5, "Ping unreachable", 1, "skip_when_exceed", "node", ["weixin", "sms"], ["ops", "dave"]),
    (302, 5, "Memory usage high", 2, None, "node", ["mail", "weixin"], ["ops"]),
    (303, 5, "Process restarted", 3, "skip_when_exceed", "node", ["weixin"], ["ops"]),
]

HOST_COUNTS = {"web": 16, "db": 6, "node": 24}

# Upstream's default notice config (converge-semantics.md 1.6), with its
# business summary: the bkmonitor profile turns it into 120 s / count 1 on
# notice_info, and the second level into 120 s / count 3.
NOTICE_CONFIG = {
    "is_enabled": True,
    "converge_func": "collect",
    "timedelta": 60,
    "count": 1,
    "condition": [
        {"dimension": key, "value": ["self"]}
        for key in ("strategy_id", "dimensions", "alert_level", "signal",
                    "bk_biz_id", "notice_receiver", "notice_way")
    ],
    "need_biz_converge": True,
    "sub_converge_config": {
        "is_enabled": True,
        "converge_func": "collect_alarm",
        "timedelta": 60,
        "count": 2,
        "condition": [
            {"dimension": key, "value": ["self"]}
            for key in ("bk_biz_id", "notice_receiver", "notice_way",
                        "alert_level", "signal")
        ],
    },
}

WEBHOOK_CONFIGS = {
    "skip_when_exceed": {
        "is_enabled": True,
        "converge_func": "skip_when_exceed",
        "timedelta": 300,
        "count": 3,
        "condition": [{"dimension": "alert_info", "value": ["self"]}],
        "need_biz_converge": False,
        "description": "webhook: at most 3 calls per alert in 5 minutes",
    },
    "defense": {
        "is_enabled": True,
        "converge_func": "defense",
        "timedelta": 600,
        "count": 5,
        "condition": [{"dimension": "alert_info", "value": ["self"]}],
        "need_biz_converge": False,
        "description": "webhook: approval after 5 calls per alert in 10 minutes",
    },
}


def hosts(prefix):
    subnet = {"web": 1, "db": 2, "node": 3}[prefix]
    return ["10.0.%d.%d" % (subnet, i + 1) for i in range(HOST_COUNTS[prefix])]


class Storm:
    def __init__(self, rng, seconds):
        self.rng = rng
        self.seconds = seconds
        self.alert_seq = 0
        self.actions = []  # (time, seq, fields) in generation order

    def time(self, t):
        """Unix seconds with millisecond precision; about half of them are
        truncated to whole seconds and written as integers."""
        if self.rng.random() < 0.5:
            return START + int(t)
        return round(START + t, 3)

    def fire(self, strategy, host, signal, t, alert_id):
        """One alert firing: notices for every way and receiver, and the
        strategy's webhook. Firings past the end of the span are dropped."""
        if t < 0 or t >= self.seconds:
            return
        sid, biz, name, level, webhook, _, ways, receivers = strategy
        when = self.time(t)
        shielded = self.rng.random() < 0.02
        base = {
            "bk_biz_id": biz,
            "strategy_id": sid,
            "signal": signal,
            "alert_level": level,
        }
        dims = {"bk_target_ip": host, "bk_target_cloud_id": 0}
        for way in ways:
            for receiver in receivers:
                action = dict(base)
                action.update(
                    {
                        "plugin_type": "notice",
                        "action_config_id": 1,
                        "alerts": [alert_id],
                        "shielded": shielded,
                        "execute_timeout": 600,
                        "context": {
                            "dimensions": dims,
                            "notice_way": way,
                            "notice_receiver": receiver,
                            "alert_name": name,
                        },
                        "converge_config": NOTICE_CONFIG,
                    }
                )
                self.actions.append((when, action))
        if webhook is not None:
            action = dict(base)
            action.update(
                {
                    "plugin_type": "webhook",
                    "action_config_id": 1000 + sid,
                    "alerts": [alert_id],
                    "shielded": shielded,
                    "execute_timeout": 60,
                    "context": {"dimensions": dims, "alert_name": name},
                    "converge_config": WEBHOOK_CONFIGS[webhook],
                }
            )
            self.actions.append((when, action))

    def new_alert(self):
        self.alert_seq += 1
        return "%d%06d" % (START // 100, self.alert_seq)

    def incident(self, start=None):
        """A burst: one strategy, a group of its hosts, a few minutes of
        re-notifications every 30-90 s, usually a recovery at the end."""
        rng = self.rng
        strategy = rng.choice(STRATEGIES)
        pool = hosts(strategy[5])
        group = rng.sample(pool, rng.randint(2, min(10, len(pool))))
        if start is None:
            start = rng.uniform(0, self.seconds * 0.95)
        duration = rng.uniform(120, 900)
        interval = rng.choice([30, 60, 60, 90])
        for host in group:
            alert_id = self.new_alert()
            t = start + rng.expovariate(1 / 20.0)  # hosts trip one by one
            end = start + duration * rng.uniform(0.6, 1.0)
            while t < end:
                self.fire(strategy, host, "abnormal", t, alert_id)
                t += interval + rng.uniform(-3, 3)
            if rng.random() < 0.7:
                self.fire(strategy, host, "recovered", end, alert_id)

    def background(self):
        """A lone alert somewhere in the hour, fired once or twice."""
        rng = self.rng
        strategy = rng.choice(STRATEGIES)
        host = rng.choice(hosts(strategy[5]))
        alert_id = self.new_alert()
        t = rng.uniform(0, self.seconds)
        self.fire(strategy, host, "abnormal", t, alert_id)
        if rng.random() < 0.3:
            self.fire(strategy, host, "abnormal", t + rng.uniform(60, 600), alert_id)


def generate(n, seconds, seed):
    rng = random.Random(seed)
    storm = Storm(rng, seconds)
    storm.incident(start=0.0)  # the storm opens with a burst
    while len(storm.actions) < n:
        if rng.random() < 0.25:
            storm.incident()
        else:
            storm.background()
    # Drop the excess of the last firing in generation order, then sort by
    # time (stable) so that times never decrease, and number 1..N.
    actions = storm.actions[:n]
    actions.sort(key=lambda a: a[0])
    for i, (when, fields) in enumerate(actions, start=1):
        line = {"type": "action", "id": i, "time": when}
        line.update(fields)
        yield line


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=50000, help="number of actions (default 50000)")
    parser.add_argument("--seconds", type=int, default=3600, help="virtual time span (default 3600)")
    parser.add_argument("--seed", type=int, default=20240501, help="random seed (default 20240501)")
    parser.add_argument("out", help="output file (JSON lines); - for stdout")
    args = parser.parse_args(argv)
    if args.actions < 1 or args.seconds < 1:
        parser.error("--actions and --seconds must be >= 1")

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="\n")
    try:
        for line in generate(args.actions, args.seconds, args.seed):
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
