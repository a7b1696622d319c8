// The metrics registry (converge/metrics.h): counts, label spellings and
// escaping, histogram buckets, which series appear, the text format's
// structure, and exact totals under concurrent updates. The test
// metrics.promtool_check runs promtool on a populated registry.

#include "converge/metrics.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace converge {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  REQUIRE(!lines.empty());
  CHECK(lines.back().empty());  // the text ends with a line feed
  lines.pop_back();
  return lines;
}

// Series text (name and labels, as rendered) -> value text. A value never
// contains a space; a label value may.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> samples;
  for (const std::string& line : Lines(text)) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    INFO(line);
    CHECK(
        samples.emplace(line.substr(0, space), line.substr(space + 1)).second);
  }
  return samples;
}

// The value of `series`, or "absent".
std::string Value(const Metrics& m, const std::string& series) {
  const auto samples = Samples(m.RenderPrometheus());
  auto it = samples.find(series);
  return it == samples.end() ? "absent" : it->second;
}

// The rendered lines other than HELP lines.
std::vector<std::string> WithoutHelp(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : Lines(text)) {
    if (!absl::StartsWith(line, "# HELP ")) out.push_back(line);
  }
  return out;
}

TEST_CASE(
    "metrics: a fresh registry renders the unlabelled counters and the "
    "histogram family",
    "[metrics]") {
  Metrics m;
  const std::vector<std::string> expected = {
      "# TYPE converge_lease_contention_total counter",
      "converge_lease_contention_total 0",
      "# TYPE converge_process_lock_failures_total counter",
      "converge_process_lock_failures_total 0",
      "# TYPE converge_processing_duration_seconds histogram",
  };
  CHECK(WithoutHelp(m.RenderPrometheus()) == expected);
}

TEST_CASE("metrics: counters show their increments", "[metrics]") {
  Metrics m;
  for (int i = 0; i < 3; ++i) m.RecordLeaseContention();
  m.RecordLockFailure();
  m.RecordLockFailure();
  m.RecordDecision(Outcome::kExecute, ConvergeFunction::kCollect);
  m.RecordDecision(Outcome::kSkip, ConvergeFunction::kCollect);
  m.RecordDecision(Outcome::kSkip, ConvergeFunction::kCollect);
  m.RecordDecision(Outcome::kSleep, ConvergeFunction::kWaitWhenProceed);
  m.RecordDecision(Outcome::kApproval, ConvergeFunction::kApproveWhenFailed);
  m.RecordRetry("summary");
  m.RecordRetry("summary");
  m.RecordDeadLetter("summary");
  m.RecordRequeue("action");
  m.RecordRequeue("action");
  m.RecordRequeue("action");
  m.RecordInstance(ConvergeType::kAction, "created");
  m.RecordInstance(ConvergeType::kAction, "created");
  m.RecordInstance(ConvergeType::kAction, "ended");
  m.RecordInstance(ConvergeType::kConverge, "hidden");
  m.RecordSummary(ConvergeType::kAction, true);
  m.RecordSummary(ConvergeType::kAction, true);
  m.RecordSummary(ConvergeType::kConverge, false);

  const std::map<std::string, std::string> expected = {
      {"converge_lease_contention_total", "3"},
      {"converge_process_lock_failures_total", "2"},
      {R"(converge_decisions_total{outcome="execute",func="collect"})", "1"},
      {R"(converge_decisions_total{outcome="skip",func="collect"})", "2"},
      {R"(converge_decisions_total{outcome="sleep",func="wait_when_proceed"})",
       "1"},
      {R"(converge_decisions_total{outcome="approval",func="approve_when_failed"})",
       "1"},
      {R"(converge_retries_total{kind="summary"})", "2"},
      {R"(converge_dead_letters_total{kind="summary"})", "1"},
      {R"(converge_requeues_total{kind="action"})", "3"},
      {R"(converge_instances_total{level="action",event="created"})", "2"},
      {R"(converge_instances_total{level="action",event="ended"})", "1"},
      {R"(converge_instances_total{level="converge",event="hidden"})", "1"},
      {R"(converge_summaries_total{level="action",sent="false"})", "0"},
      {R"(converge_summaries_total{level="action",sent="true"})", "2"},
      {R"(converge_summaries_total{level="converge",sent="false"})", "1"},
      {R"(converge_summaries_total{level="converge",sent="true"})", "0"},
  };
  // Exactly these series: nothing untouched appears.
  CHECK(Samples(m.RenderPrometheus()) == expected);
}

TEST_CASE(
    "metrics: outcomes and functions have their upstream spellings, func "
    "none when no function ran",
    "[metrics]") {
  Metrics m;
  m.RecordDecision(Outcome::kShield, std::nullopt);
  m.RecordDecision(Outcome::kExecute, std::nullopt);
  m.RecordDecision(Outcome::kExecute, std::nullopt);
  CHECK(Value(m, R"(converge_decisions_total{outcome="shield",func="none"})") ==
        "1");
  CHECK(
      Value(m, R"(converge_decisions_total{outcome="execute",func="none"})") ==
      "2");

  const std::vector<std::pair<ConvergeFunction, std::string>> funcs = {
      {ConvergeFunction::kSkipWhenSuccess, "skip_when_success"},
      {ConvergeFunction::kApproveWhenFailed, "approve_when_failed"},
      {ConvergeFunction::kSkipWhenProceed, "skip_when_proceed"},
      {ConvergeFunction::kWaitWhenProceed, "wait_when_proceed"},
      {ConvergeFunction::kSkipWhenExceed, "skip_when_exceed"},
      {ConvergeFunction::kDefense, "defense"},
      {ConvergeFunction::kCollect, "collect"},
      {ConvergeFunction::kCollectAlarm, "collect_alarm"},
      {ConvergeFunction::kRelevance, "relevance"},
      {ConvergeFunction::kTrigger, "trigger"},
  };
  const std::vector<std::pair<Outcome, std::string>> outcomes = {
      {Outcome::kExecute, "execute"}, {Outcome::kSkip, "skip"},
      {Outcome::kSleep, "sleep"},     {Outcome::kApproval, "approval"},
      {Outcome::kShield, "shield"},
  };
  Metrics all;
  for (const auto& [o, oname] : outcomes) {
    for (const auto& [f, fname] : funcs) all.RecordDecision(o, f);
  }
  const auto samples = Samples(all.RenderPrometheus());
  for (const auto& [o, oname] : outcomes) {
    for (const auto& [f, fname] : funcs) {
      const std::string series = "converge_decisions_total{outcome=\"" + oname +
                                 "\",func=\"" + fname + "\"}";
      INFO(series);
      auto it = samples.find(series);
      REQUIRE(it != samples.end());
      CHECK(it->second == "1");
    }
  }
}

TEST_CASE("metrics: label values are escaped and made valid UTF-8",
          "[metrics]") {
  Metrics m;
  m.RecordRetry("a\\b\"c\nd");
  m.RecordRetry("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x94");
  m.RecordRetry("bad\xff|\xc3|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80");
  m.RecordRetry("");
  const std::string text = m.RenderPrometheus();
  INFO(text);
  CHECK(absl::StrContains(
      text, "converge_retries_total{kind=\"a\\\\b\\\"c\\nd\"} 1\n"));
  CHECK(absl::StrContains(text,
                          "converge_retries_total{kind=\"caf\xc3\xa9 "
                          "\xe2\x82\xac \xf0\x9f\x94\x94\"} 1\n"));
  // Each byte that is not part of a valid sequence (truncated, overlong,
  // surrogate, above U+10FFFF) becomes U+FFFD.
  const std::string r = "\xef\xbf\xbd";
  CHECK(absl::StrContains(text, "converge_retries_total{kind=\"bad" + r + "|" +
                                    r + "|" + r + r + "|" + r + r + "|" + r +
                                    r + r + "|" + r + r + r + r + "\"} 1\n"));
  CHECK(absl::StrContains(text, "converge_retries_total{kind=\"\"} 1\n"));

  Metrics q;
  q.SetQueueLength("converge.\"x\"", 1, 2, 3);
  CHECK(
      Value(
          q,
          R"(converge_queue_length{queue="converge.\"x\"",state="pending"})") ==
      "1");
}

TEST_CASE(
    "metrics: histogram buckets are cumulative, le inclusive, with "
    "+Inf, _sum and _count",
    "[metrics]") {
  Metrics m;
  m.ObserveProcessing("summary", absl::Microseconds(10), true);  // <= 5e-05
  m.ObserveProcessing("summary", absl::Microseconds(50), true);  // <= 5e-05
  m.ObserveProcessing("summary", absl::Microseconds(51), true);  // <= 0.0001
  m.ObserveProcessing("summary", absl::Milliseconds(3), false);  // <= 0.005
  m.ObserveProcessing("summary", absl::Seconds(1), true);        // <= 1
  m.ObserveProcessing("summary", absl::Seconds(10), true);       // <= 10
  m.ObserveProcessing("summary", absl::Seconds(11), false);      // +Inf only
  m.ObserveProcessing("summary", -absl::Seconds(1), true);       // as 0
  const std::string text = m.RenderPrometheus();
  INFO(text);

  const std::vector<std::pair<std::string, std::string>> buckets = {
      {"5e-05", "3"}, {"0.0001", "4"}, {"0.00025", "4"}, {"0.0005", "4"},
      {"0.001", "4"}, {"0.0025", "4"}, {"0.005", "5"},   {"0.01", "5"},
      {"0.025", "5"}, {"0.05", "5"},   {"0.1", "5"},     {"0.25", "5"},
      {"0.5", "5"},   {"1", "6"},      {"2.5", "6"},     {"5", "6"},
      {"10", "7"},    {"+Inf", "8"},
  };
  std::vector<std::string> expected;
  for (const auto& [le, count] : buckets) {
    expected.push_back(
        "converge_processing_duration_seconds_bucket{kind=\"summary\",le=\"" +
        le + "\"} " + count);
  }
  // 10us + 50us + 51us + 3ms + 1s + 10s + 11s + 0
  expected.push_back(
      "converge_processing_duration_seconds_sum{kind=\"summary\"} 22.003111");
  expected.push_back(
      "converge_processing_duration_seconds_count{kind=\"summary\"} 8");

  // The series follow the family's TYPE line, in this order.
  const std::vector<std::string> lines = WithoutHelp(text);
  auto type =
      std::find(lines.begin(), lines.end(),
                "# TYPE converge_processing_duration_seconds histogram");
  REQUIRE(type != lines.end());
  REQUIRE(lines.end() - type > static_cast<ptrdiff_t>(expected.size()));
  CHECK(std::vector<std::string>(type + 1, type + 1 + expected.size()) ==
        expected);

  CHECK(Value(m, R"(converge_tasks_total{kind="summary",result="ok"})") == "6");
  CHECK(Value(m, R"(converge_tasks_total{kind="summary",result="error"})") ==
        "2");
}

TEST_CASE("metrics: an infinite duration counts as 24 h", "[metrics]") {
  Metrics m;
  m.ObserveProcessing("sweep", absl::InfiniteDuration(), true);
  CHECK(Value(m, R"(converge_processing_duration_seconds_sum{kind="sweep"})") ==
        "86400");
  CHECK(
      Value(
          m,
          R"(converge_processing_duration_seconds_bucket{kind="sweep",le="10"})") ==
      "0");
  CHECK(
      Value(
          m,
          R"(converge_processing_duration_seconds_bucket{kind="sweep",le="+Inf"})") ==
      "1");
}

TEST_CASE("metrics: a kind appears in a family only once recorded there",
          "[metrics]") {
  Metrics m;
  m.RecordRetry("repoll");
  const auto samples = Samples(m.RenderPrometheus());
  CHECK(samples.count(R"(converge_retries_total{kind="repoll"})") == 1);
  for (const auto& [series, value] : samples) {
    INFO(series);
    CHECK(!absl::StrContains(series, "processing_duration"));
    CHECK(!absl::StartsWith(series, "converge_tasks_total"));
    CHECK(!absl::StartsWith(series, "converge_requeues_total"));
  }
}

TEST_CASE("metrics: task kinds and events outside the known set are counted",
          "[metrics]") {
  Metrics m;
  m.ObserveProcessing("my_kind", absl::Milliseconds(1), true);
  m.ObserveProcessing("my_kind", absl::Milliseconds(1), true);
  m.RecordDeadLetter("other_kind");
  m.RecordInstance(ConvergeType::kConverge, "reopened");
  CHECK(Value(m, R"(converge_tasks_total{kind="my_kind",result="ok"})") == "2");
  CHECK(
      Value(m,
            R"(converge_processing_duration_seconds_count{kind="my_kind"})") ==
      "2");
  CHECK(Value(m, R"(converge_dead_letters_total{kind="other_kind"})") == "1");
  CHECK(
      Value(m,
            R"(converge_instances_total{level="converge",event="reopened"})") ==
      "1");
}

TEST_CASE("metrics: label values of a family come sorted", "[metrics]") {
  Metrics m;
  for (const char* kind : {"zeta", "sweep", "action", "alpha", "summary"}) {
    m.RecordRequeue(kind);
  }
  std::vector<std::string> kinds;
  for (const std::string& line : Lines(m.RenderPrometheus())) {
    if (absl::StartsWith(line, "converge_requeues_total{"))
      kinds.push_back(line);
  }
  CHECK(kinds == std::vector<std::string>{
                     R"(converge_requeues_total{kind="action"} 1)",
                     R"(converge_requeues_total{kind="alpha"} 1)",
                     R"(converge_requeues_total{kind="summary"} 1)",
                     R"(converge_requeues_total{kind="sweep"} 1)",
                     R"(converge_requeues_total{kind="zeta"} 1)",
                 });
}

TEST_CASE("metrics: gauges show the last value set, 0 included", "[metrics]") {
  Metrics m;
  CHECK(Value(m, R"(converge_open_instances{level="action"})") == "absent");
  m.SetOpenInstances(ConvergeType::kAction, 5);
  m.SetOpenInstances(ConvergeType::kAction, 0);
  m.SetOpenInstances(ConvergeType::kConverge, 2);
  m.SetQueueLength("converge.action", 10, 2, 1);
  m.SetQueueLength("converge.action", 4, 1, 0);
  m.SetQueueLength("converge.summary", -1, 0, 0);  // gauges may go negative
  const std::map<std::string, std::string> expected = {
      {"converge_lease_contention_total", "0"},
      {"converge_process_lock_failures_total", "0"},
      {R"(converge_open_instances{level="action"})", "0"},
      {R"(converge_open_instances{level="converge"})", "2"},
      {R"(converge_queue_length{queue="converge.action",state="pending"})",
       "4"},
      {R"(converge_queue_length{queue="converge.action",state="in_flight"})",
       "1"},
      {R"(converge_queue_length{queue="converge.action",state="dead"})", "0"},
      {R"(converge_queue_length{queue="converge.summary",state="pending"})",
       "-1"},
      {R"(converge_queue_length{queue="converge.summary",state="in_flight"})",
       "0"},
      {R"(converge_queue_length{queue="converge.summary",state="dead"})", "0"},
  };
  CHECK(Samples(m.RenderPrometheus()) == expected);
}

// Every sample belongs to the family whose HELP and TYPE lines precede it,
// each family appears once, names start with converge_, and counters end in
// _total.
TEST_CASE("metrics: each family has HELP then TYPE, then only its samples",
          "[metrics]") {
  Metrics m;
  m.RecordDecision(Outcome::kSkip, ConvergeFunction::kDefense);
  m.ObserveProcessing("action", absl::Milliseconds(2), true);
  m.RecordRetry("action");
  m.RecordDeadLetter("action");
  m.RecordRequeue("action");
  m.RecordInstance(ConvergeType::kAction, "created");
  m.RecordSummary(ConvergeType::kAction, true);
  m.SetQueueLength("converge.action", 1, 0, 0);
  m.SetOpenInstances(ConvergeType::kAction, 1);

  const std::map<std::string, std::string> types = {
      {"converge_decisions_total", "counter"},
      {"converge_lease_contention_total", "counter"},
      {"converge_process_lock_failures_total", "counter"},
      {"converge_processing_duration_seconds", "histogram"},
      {"converge_tasks_total", "counter"},
      {"converge_retries_total", "counter"},
      {"converge_dead_letters_total", "counter"},
      {"converge_requeues_total", "counter"},
      {"converge_instances_total", "counter"},
      {"converge_summaries_total", "counter"},
      {"converge_open_instances", "gauge"},
      {"converge_queue_length", "gauge"},
  };
  std::set<std::string> seen;
  std::string family, type;
  std::string help_for;
  for (const std::string& line : Lines(m.RenderPrometheus())) {
    INFO(line);
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (absl::StartsWith(line, "# HELP ")) {
      REQUIRE(words.size() > 3);
      help_for = words[2];
      CHECK(seen.insert(help_for).second);
    } else if (absl::StartsWith(line, "# TYPE ")) {
      REQUIRE(words.size() == 4);
      CHECK(words[2] == help_for);
      family = words[2];
      type = words[3];
      REQUIRE(types.count(family) == 1);
      CHECK(types.at(family) == type);
      CHECK(absl::StartsWith(family, "converge_"));
      CHECK(absl::EndsWith(family, "_total") == (type == "counter"));
    } else {
      REQUIRE(!family.empty());
      const std::string name = line.substr(0, line.find_first_of("{ "));
      if (type == "histogram") {
        CHECK((name == family + "_bucket" || name == family + "_sum" ||
               name == family + "_count"));
      } else {
        CHECK(name == family);
      }
    }
  }
  CHECK(seen.size() == types.size());
}

TEST_CASE("metrics: concurrent updates from 8 threads are all counted",
          "[metrics][concurrency]") {
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  Metrics m;
  std::atomic<bool> done{false};
  std::atomic<int> bad_scrapes{0};
  // Scrapes while the writers run (for TSan, and to show rendering does not
  // block or break them). Catch2's assertions are not thread-safe, so it
  // only counts.
  std::thread scraper([&] {
    while (!done.load()) {
      const std::string text = m.RenderPrometheus();
      if (!absl::EndsWith(text, "\n")) ++bad_scrapes;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      // Known kinds (lock-free) and kinds created concurrently in the map.
      const std::string own = "kind" + std::to_string(t % 3);
      for (int i = 0; i < kIterations; ++i) {
        m.RecordDecision(Outcome::kSkip, ConvergeFunction::kCollect);
        m.RecordDecision(Outcome::kShield, std::nullopt);
        m.RecordLeaseContention();
        if (i % 2 == 0) m.RecordLockFailure();
        m.ObserveProcessing("action", absl::Microseconds(100), i % 4 != 0);
        m.ObserveProcessing(own, absl::Milliseconds(20), true);
        m.RecordRetry("summary");
        m.RecordRequeue(own);
        m.RecordInstance(ConvergeType::kAction, "created");
        m.RecordInstance(ConvergeType::kConverge, "merged");
        m.RecordSummary(ConvergeType::kAction, i % 2 == 0);
        m.SetQueueLength("converge.q" + std::to_string(t), i, 0, 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();
  CHECK(bad_scrapes == 0);

  const auto samples = Samples(m.RenderPrometheus());
  auto value = [&](const std::string& series) {
    auto it = samples.find(series);
    return it == samples.end() ? std::string("absent") : it->second;
  };
  const std::string n = std::to_string(kThreads * kIterations);
  const std::string half = std::to_string(kThreads * kIterations / 2);
  const std::string quarter = std::to_string(kThreads * kIterations / 4);
  CHECK(value(R"(converge_decisions_total{outcome="skip",func="collect"})") ==
        n);
  CHECK(value(R"(converge_decisions_total{outcome="shield",func="none"})") ==
        n);
  CHECK(value("converge_lease_contention_total") == n);
  CHECK(value("converge_process_lock_failures_total") == half);
  CHECK(value(R"(converge_processing_duration_seconds_count{kind="action"})") ==
        n);
  CHECK(
      value(
          R"(converge_processing_duration_seconds_bucket{kind="action",le="0.0001"})") ==
      n);
  CHECK(
      value(
          R"(converge_processing_duration_seconds_bucket{kind="action",le="5e-05"})") ==
      "0");
  CHECK(value(R"(converge_tasks_total{kind="action",result="error"})") ==
        quarter);
  CHECK(value(R"(converge_processing_duration_seconds_sum{kind="action"})") ==
        "16");  // 160000 x 100 us
  CHECK(value(R"(converge_retries_total{kind="summary"})") == n);
  CHECK(value(R"(converge_instances_total{level="action",event="created"})") ==
        n);
  CHECK(value(R"(converge_instances_total{level="converge",event="merged"})") ==
        n);
  CHECK(value(R"(converge_summaries_total{level="action",sent="true"})") ==
        half);
  CHECK(value(R"(converge_summaries_total{level="action",sent="false"})") ==
        half);
  // Threads 0, 3, 6 share kind0; 1, 4, 7 kind1; 2, 5 kind2.
  for (const auto& [kind, threads_of_kind] :
       std::vector<std::pair<std::string, int>>{
           {"kind0", 3}, {"kind1", 3}, {"kind2", 2}}) {
    const std::string per_kind = std::to_string(threads_of_kind * kIterations);
    CHECK(value("converge_requeues_total{kind=\"" + kind + "\"}") == per_kind);
    CHECK(value("converge_tasks_total{kind=\"" + kind + "\",result=\"ok\"}") ==
          per_kind);
    CHECK(value("converge_processing_duration_seconds_bucket{kind=\"" + kind +
                "\",le=\"0.025\"}") == per_kind);
  }
  for (int t = 0; t < kThreads; ++t) {
    CHECK(value("converge_queue_length{queue=\"converge.q" + std::to_string(t) +
                "\",state=\"pending\"}") == std::to_string(kIterations - 1));
  }
}

}  // namespace
}  // namespace converge
