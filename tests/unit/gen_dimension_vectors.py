#!/usr/bin/env python3
"""Reference vectors for converge::ComputeDimension (dimension_vectors_test.cc).

This is upstream's dimension computation (bkmonitor converge processor,
get_dimension / get_dimension_value, converge-semantics.md section 3.3 step 7)
transcribed to plain Python, with our one fix: a list of four or more items
renders as "first,<md5(",".join(items))[:5]>.<n-2>,last" instead of crashing
(upstream calls md5 on the list itself).

It is deliberately independent of the C++ code: it uses only hashlib and
Python's own str(), so the vectors it prints check the C++ port against
upstream's semantics, not against itself.

Run:  python3 tests/unit/gen_dimension_vectors.py
It prints, for every case, the canonical text, D and converged_condition, plus
C++ literals ready to paste into dimension_vectors_test.cc.
"""

import hashlib
import json
from collections import OrderedDict
from copy import deepcopy


def get_dimension_value(value):
    if isinstance(value, list):
        if len(value) >= 4:
            # Upstream crashes here (md5 of a list). Our fix: md5 of the
            # comma-joined items, first 5 hex characters.
            h = hashlib.md5(",".join(map(str, value)).encode()).hexdigest()[:5]
            value = [value[0], f"{h}.{len(value) - 2}", value[-1]]
        return ",".join(map(str, value))
    return value  # used in an f-string below, i.e. str()


def get_dimension(converge_func, effective_condition, original_condition,
                  context):
    """Returns (D, converged_condition, canonical_text).

    Upstream returns only the first two; the canonical text (the string that
    is hashed) is returned as well so the test can check it.
    """
    parts = ["#{}".format(converge_func)]
    conds = {c["dimension"]: c for c in effective_condition}
    conds.update({c["dimension"]: c for c in original_condition})
    conds = OrderedDict(sorted(conds.items()))
    converged_condition = {}
    for c in conds.values():
        key = c["dimension"]
        values = deepcopy(c["value"])
        for i, v in enumerate(values):
            if v == "self":
                values[i] = context.get(key, "")
            parts.append(f"|{key}:{get_dimension_value(values[i])}")
        converged_condition[key] = [
            v[0] if isinstance(v, list) else v for v in values
        ]
    text = "".join(parts)
    dimension = "!sha1#" + hashlib.sha1(text.encode("utf-8")).hexdigest()
    return dimension, converged_condition, text


def self_conditions(*keys):
    return [{"dimension": k, "value": ["self"]} for k in keys]


def build_cases():
    cases = []

    # (1) skip_when_exceed on alert_info.
    cond = self_conditions("alert_info")
    cases.append({
        "name": "skip_when_exceed on alert_info",
        "func": "skip_when_exceed",
        "effective": cond,
        "original": cond,
        "context": {
            "alert_info": "1001_1_abnormal_d41d8cd98f00b204e9800998ecf8427e",
        },
    })

    # (2) Upstream's notice override: the effective condition is notice_info,
    # the original one carries the seven default notice keys; D covers all
    # eight. strategy_id, alert_level and bk_biz_id are ints (Python str()).
    strategy_id, alert_level, signal = 42, 2, "abnormal"
    dimensions = hashlib.md5(b"bk_target_ip=10.0.0.1").hexdigest()
    alert_info = f"{strategy_id}_{alert_level}_{signal}_{dimensions}"
    notice_way, notice_receiver = "mail", "admin"
    cases.append({
        "name": "notice override: notice_info plus the original keys",
        "func": "collect",
        "effective": self_conditions("notice_info"),
        "original": self_conditions("strategy_id", "dimensions", "alert_level",
                                    "signal", "bk_biz_id", "notice_receiver",
                                    "notice_way"),
        "context": {
            "strategy_id": strategy_id,
            "alert_level": alert_level,
            "signal": signal,
            "bk_biz_id": 2,
            "dimensions": dimensions,
            "alert_info": alert_info,
            "notice_way": notice_way,
            "notice_receiver": notice_receiver,
            "notice_info": f"{alert_info}_{notice_way}_{notice_receiver}",
            "action_info": f"{strategy_id}_{signal}_7",  # not in the condition
        },
    })

    # (3) Literals mixed with "self"; the original entry for strategy_id wins
    # over the effective one, and the effective-only key "extra" stays.
    cases.append({
        "name": "literals mixed with self, original overrides effective",
        "func": "defense",
        "effective": [
            {"dimension": "strategy_id", "value": ["self"]},
            {"dimension": "extra", "value": ["x"]},
        ],
        "original": [
            {"dimension": "strategy_id", "value": ["self", "literal", 7]},
        ],
        "context": {"strategy_id": 42, "extra": "ignored (literal)"},
    })

    # (4) Context lists shorter than four items are joined by ","; the
    # converged condition keeps the first item. A literal list works the same.
    cond = [
        {"dimension": "hosts", "value": ["self"]},
        {"dimension": "mixed", "value": ["self"]},
        {"dimension": "pair", "value": [["x", "y"]]},
    ]
    cases.append({
        "name": "short lists",
        "func": "skip_when_success",
        "effective": cond,
        "original": cond,
        "context": {
            "hosts": ["10.0.0.1", "10.0.0.2"],
            "mixed": [1, "b", True],
        },
    })

    # (5) Lists of four or more items: the md5 fix form.
    cond = self_conditions("receivers", "four")
    cases.append({
        "name": "long lists (md5 form)",
        "func": "collect_alarm",
        "effective": cond,
        "original": cond,
        "context": {
            "receivers": ["alice", "bob", "carol", "dave", "eve"],
            "four": [1, 2, 3, 4],
        },
    })

    # (6) A key missing from the context (""), None ("None"), True ("True"),
    # False ("False"), a Chinese value, and key order by codepoint
    # ("Zone" < "alpha" < "none" ...).
    cond = self_conditions("missing", "none", "flag", "off", "receiver",
                           "Zone", "alpha")
    cases.append({
        "name": "missing key, None, bools, UTF-8, codepoint key order",
        "func": "trigger",
        "effective": cond,
        "original": cond,
        "context": {
            "none": None,
            "flag": True,
            "off": False,
            "receiver": "告警接收人",
            "Zone": "z",
            "alpha": "a",
        },
    })

    # (7) A condition entry with an empty value list adds no part but still
    # appears (empty) in converged_condition.
    cases.append({
        "name": "empty value list",
        "func": "relevance",
        "effective": [
            {"dimension": "empty", "value": []},
            {"dimension": "strategy_id", "value": ["self"]},
        ],
        "original": [],
        "context": {"strategy_id": 1},
    })

    # (8) A nested list is rendered with Python's repr of its strings:
    # non-printable code points (U+3000, U+00A0, U+200B) are escaped,
    # printable ones (Chinese, emoji) kept.
    cond = self_conditions("nested")
    cases.append({
        "name": "nested list with non-printable characters",
        "func": "skip_when_success",
        "effective": cond,
        "original": cond,
        "context": {
            "nested": [["a\u3000b", "\u00a0\u200b"], "中文\U0001F600"],
        },
    })

    return cases


def cpp_string(s):
    """A C++ string literal (printable UTF-8 kept as is, the rest escaped)."""
    out = []
    for c in json.dumps(s, ensure_ascii=False):
        if ord(c) >= 0x80 and not c.isprintable():
            out.append("\\u%04x" % ord(c) if ord(c) < 0x10000
                       else "\\U%08x" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def cpp_value(v):
    if v is None:
        return "Value()"
    if isinstance(v, bool):
        return "Value(true)" if v else "Value(false)"
    if isinstance(v, int):
        return f"Value(int64_t{{{v}}})"
    if isinstance(v, str):
        return f"Value({cpp_string(v)})"
    if isinstance(v, list):
        return "Value(Value::List{%s})" % ", ".join(cpp_value(x) for x in v)
    raise TypeError(f"no C++ form for {v!r}")


def main():
    for case in build_cases():
        dimension, converged, text = get_dimension(
            case["func"], case["effective"], case["original"],
            case["context"])
        print(f"== {case['name']}")
        print(f"  text:      {text}")
        print(f"  dimension: {dimension}")
        print(f"  converged: {converged!r}")
        print("  C++:")
        print(f"    text = {cpp_string(text)};")
        print(f"    dimension = {cpp_string(dimension)};")
        entries = ", ".join(
            "{%s, {%s}}" % (cpp_string(k), ", ".join(cpp_value(v) for v in vs))
            for k, vs in sorted(converged.items()))
        print(f"    converged = {{{entries}}};")
        print()


if __name__ == "__main__":
    main()
