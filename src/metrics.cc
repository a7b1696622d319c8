#include "converge/metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "fmt/format.h"
#include "internal/strings.h"

namespace converge {
namespace {

using Counter = std::atomic<uint64_t>;
using Gauge = std::atomic<int64_t>;

void Inc(Counter& c) { c.fetch_add(1, std::memory_order_relaxed); }
uint64_t Load(const Counter& c) { return c.load(std::memory_order_relaxed); }

// The enums' values in declaration order, so that a value's index is its
// underlying integer (checked below) and its name is types.h's ToString.
constexpr std::array<Outcome, 5> kOutcomes{Outcome::kExecute, Outcome::kSkip,
                                           Outcome::kSleep, Outcome::kApproval,
                                           Outcome::kShield};
constexpr std::array<ConvergeFunction, 10> kFunctions{
    ConvergeFunction::kSkipWhenSuccess, ConvergeFunction::kApproveWhenFailed,
    ConvergeFunction::kSkipWhenProceed, ConvergeFunction::kWaitWhenProceed,
    ConvergeFunction::kSkipWhenExceed,  ConvergeFunction::kDefense,
    ConvergeFunction::kCollect,         ConvergeFunction::kCollectAlarm,
    ConvergeFunction::kRelevance,       ConvergeFunction::kTrigger};
constexpr std::array<ConvergeType, 2> kLevels{ConvergeType::kAction,
                                              ConvergeType::kConverge};

template <typename E, size_t N>
constexpr bool InDeclarationOrder(const std::array<E, N>& values) {
  for (size_t i = 0; i < N; ++i) {
    if (static_cast<size_t>(values[i]) != i) return false;
  }
  return true;
}
static_assert(InDeclarationOrder(kOutcomes));
static_assert(InDeclarationOrder(kFunctions));
static_assert(InDeclarationOrder(kLevels));

// Index of an enum value in its array, or N for a value outside the enum
// (an integer cast to it); such values are not counted.
template <typename E, size_t N>
size_t IndexOf(const std::array<E, N>&, E v) {
  const auto i = static_cast<size_t>(v);
  return i < N ? i : N;
}

// func="none": no converge function ran.
constexpr size_t kNoFunction = kFunctions.size();

// Processing-duration buckets, 50 us to 10 s; `le` is spelled as Go's
// client_golang spells these bounds, so the series match other exporters'.
struct Bucket {
  int64_t le_nanos;
  std::string_view le;
};
constexpr std::array<Bucket, 17> kBuckets{{
    {50'000, "5e-05"},
    {100'000, "0.0001"},
    {250'000, "0.00025"},
    {500'000, "0.0005"},
    {1'000'000, "0.001"},
    {2'500'000, "0.0025"},
    {5'000'000, "0.005"},
    {10'000'000, "0.01"},
    {25'000'000, "0.025"},
    {50'000'000, "0.05"},
    {100'000'000, "0.1"},
    {250'000'000, "0.25"},
    {500'000'000, "0.5"},
    {1'000'000'000, "1"},
    {2'500'000'000, "2.5"},
    {5'000'000'000, "5"},
    {10'000'000'000, "10"},
}};

// Observations are clamped to [0, 24 h] so that the sum cannot overflow.
constexpr int64_t kMaxObservationNanos = int64_t{24} * 3600 * 1'000'000'000;

// The counters of one task kind. Buckets are not cumulative here (one
// increment per observation); the last one counts observations above 10 s.
struct KindSeries {
  std::array<Counter, kBuckets.size() + 1> buckets{};
  Gauge sum_nanos{0};
  Counter ok{0};
  Counter error{0};
  Counter retries{0};
  Counter dead_letters{0};
  Counter requeues{0};
};

struct QueueSeries {
  Gauge pending{0};
  Gauge in_flight{0};
  Gauge dead{0};
};

using LevelCounters = std::array<Counter, kLevels.size()>;

// Label value -> T, with stable addresses. The known names are preallocated
// and found without a lock; other names go to a mutex-guarded map, created
// on first use and never removed. (std::shared_mutex rather than
// absl::Mutex: Debian's abseil is not built for ThreadSanitizer, which then
// cannot see absl::Mutex's ordering and reports false races.)
template <typename T>
class Named {
 public:
  explicit Named(std::initializer_list<std::string_view> known)
      : known_names_(known), known_(new T[known.size()]()) {}

  T& Get(std::string_view name) {
    for (size_t i = 0; i < known_names_.size(); ++i) {
      if (known_names_[i] == name) return known_[i];
    }
    {
      std::shared_lock lock(mu_);
      auto it = others_.find(internal::AV(name));
      if (it != others_.end()) return *it->second;
    }
    std::unique_lock lock(mu_);
    auto [it, inserted] = others_.try_emplace(std::string(name));
    if (inserted) it->second = std::make_unique<T>();
    return *it->second;
  }

  // Every entry (known ones always), sorted by name.
  std::vector<std::pair<std::string, const T*>> Sorted() const {
    std::vector<std::pair<std::string, const T*>> all;
    for (size_t i = 0; i < known_names_.size(); ++i) {
      all.emplace_back(std::string(known_names_[i]), &known_[i]);
    }
    {
      std::shared_lock lock(mu_);
      for (const auto& [name, value] : others_) {
        all.emplace_back(name, value.get());
      }
    }
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return all;
  }

 private:
  const std::vector<std::string_view> known_names_;
  const std::unique_ptr<T[]> known_;
  mutable std::shared_mutex mu_;
  // Guarded by mu_.
  absl::flat_hash_map<std::string, std::unique_ptr<T>> others_;
};

// ---- text format ----

// Appends `s` as a label value: backslash, double quote and line feed
// escaped; each byte that is not part of valid UTF-8 replaced by U+FFFD (the
// format requires UTF-8, and promtool rejects anything else).
void AppendLabelValue(std::string* out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\':
          out->append("\\\\");
          break;
        case '"':
          out->append("\\\"");
          break;
        case '\n':
          out->append("\\n");
          break;
        default:
          out->push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // Length and the allowed range of the second byte (RFC 3629 table),
    // which excludes overlong forms, surrogates and code points > U+10FFFF.
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      valid = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (valid) {
      out->append(s.substr(i, len));
      i += len;
    } else {
      out->append("\xEF\xBF\xBD");
      ++i;
    }
  }
}

using Labels =
    std::initializer_list<std::pair<std::string_view, std::string_view>>;

void AppendSeries(std::string* out, std::string_view name, Labels labels) {
  out->append(name);
  if (labels.size() == 0) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [label, value] : labels) {
    if (!first) out->push_back(',');
    first = false;
    internal::StrAppend(out, label, "=\"");
    AppendLabelValue(out, value);
    out->push_back('"');
  }
  out->push_back('}');
}

template <typename V>
void AppendSample(std::string* out, std::string_view name, Labels labels,
                  V value) {
  AppendSeries(out, name, labels);
  absl::StrAppend(out, " ", value, "\n");
}

// HELP and TYPE, then `samples`. The HELP texts are constants without
// backslashes or line feeds, so they need no escaping.
void AppendFamily(std::string* out, std::string_view name,
                  std::string_view type, std::string_view help,
                  std::string_view samples) {
  internal::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                      type, "\n", samples);
}

// A labelled family appears only when it has a series.
void AppendFamilyIfAny(std::string* out, std::string_view name,
                       std::string_view type, std::string_view help,
                       std::string_view samples) {
  if (!samples.empty()) AppendFamily(out, name, type, help, samples);
}

std::string_view BoolLabel(bool b) { return b ? "true" : "false"; }

}  // namespace

struct Metrics::Rep {
  std::array<std::array<Counter, kFunctions.size() + 1>, kOutcomes.size()>
      decisions{};
  Counter lease_contention{0};
  Counter lock_failures{0};
  // [level][sent]
  std::array<std::array<Counter, 2>, kLevels.size()> summaries{};
  std::array<Gauge, kLevels.size()> open_instances{};
  std::array<std::atomic<bool>, kLevels.size()> open_instances_set{};

  Named<KindSeries> kinds{"action",      "approval", "repoll", "retention",
                          "subconverge", "summary",  "sweep"};
  Named<LevelCounters> instance_events{"created", "ended", "hidden"};
  Named<QueueSeries> queues{};
};

Metrics::Metrics() : rep_(std::make_unique<Rep>()) {}
Metrics::~Metrics() = default;

void Metrics::RecordDecision(Outcome outcome,
                             std::optional<ConvergeFunction> func) {
  const size_t o = IndexOf(kOutcomes, outcome);
  const size_t f = func.has_value() ? IndexOf(kFunctions, *func) : kNoFunction;
  if (o == kOutcomes.size() || (func.has_value() && f == kFunctions.size())) {
    return;
  }
  Inc(rep_->decisions[o][f]);
}

void Metrics::RecordLeaseContention() { Inc(rep_->lease_contention); }

void Metrics::RecordLockFailure() { Inc(rep_->lock_failures); }

void Metrics::ObserveProcessing(std::string_view task_kind, absl::Duration d,
                                bool ok) {
  const int64_t nanos =
      std::clamp(absl::ToInt64Nanoseconds(d), int64_t{0}, kMaxObservationNanos);
  const auto bucket = std::lower_bound(
      kBuckets.begin(), kBuckets.end(), nanos,
      [](const Bucket& b, int64_t v) { return b.le_nanos < v; });
  KindSeries& k = rep_->kinds.Get(task_kind);
  Inc(k.buckets[static_cast<size_t>(bucket - kBuckets.begin())]);
  k.sum_nanos.fetch_add(nanos, std::memory_order_relaxed);
  Inc(ok ? k.ok : k.error);
}

void Metrics::RecordRetry(std::string_view task_kind) {
  Inc(rep_->kinds.Get(task_kind).retries);
}

void Metrics::RecordDeadLetter(std::string_view task_kind) {
  Inc(rep_->kinds.Get(task_kind).dead_letters);
}

void Metrics::RecordRequeue(std::string_view task_kind) {
  Inc(rep_->kinds.Get(task_kind).requeues);
}

void Metrics::RecordInstance(ConvergeType level, std::string_view event) {
  const size_t l = IndexOf(kLevels, level);
  if (l == kLevels.size()) return;
  Inc(rep_->instance_events.Get(event)[l]);
}

void Metrics::RecordSummary(ConvergeType level, bool sent) {
  const size_t l = IndexOf(kLevels, level);
  if (l == kLevels.size()) return;
  Inc(rep_->summaries[l][sent ? 1 : 0]);
}

void Metrics::SetQueueLength(std::string_view queue, int64_t pending,
                             int64_t in_flight, int64_t dead) {
  QueueSeries& q = rep_->queues.Get(queue);
  q.pending.store(pending, std::memory_order_relaxed);
  q.in_flight.store(in_flight, std::memory_order_relaxed);
  q.dead.store(dead, std::memory_order_relaxed);
}

void Metrics::SetOpenInstances(ConvergeType level, int64_t n) {
  const size_t l = IndexOf(kLevels, level);
  if (l == kLevels.size()) return;
  rep_->open_instances[l].store(n, std::memory_order_relaxed);
  rep_->open_instances_set[l].store(true, std::memory_order_release);
}

std::string Metrics::RenderPrometheus() const {
  const Rep& r = *rep_;
  std::string out;
  std::string samples;

  for (size_t o = 0; o < kOutcomes.size(); ++o) {
    for (size_t f = 0; f <= kFunctions.size(); ++f) {
      const uint64_t v = Load(r.decisions[o][f]);
      if (v == 0) continue;
      const std::string_view func =
          f == kNoFunction ? "none" : ToString(kFunctions[f]);
      AppendSample(&samples, "converge_decisions_total",
                   {{"outcome", ToString(kOutcomes[o])}, {"func", func}}, v);
    }
  }
  AppendFamilyIfAny(&out, "converge_decisions_total", "counter",
                    "Decisions made, by outcome and by the converge function "
                    "that made them (none: no function ran).",
                    samples);

  samples.clear();
  AppendSample(&samples, "converge_lease_contention_total", {},
               Load(r.lease_contention));
  AppendFamily(&out, "converge_lease_contention_total", "counter",
               "Failed attempts to take a dimension lease because it was busy.",
               samples);

  samples.clear();
  AppendSample(&samples, "converge_process_lock_failures_total", {},
               Load(r.lock_failures));
  AppendFamily(&out, "converge_process_lock_failures_total", "counter",
               "Evaluations that gave up because the dimension lease stayed "
               "busy or was lost.",
               samples);

  const auto kinds = r.kinds.Sorted();
  samples.clear();
  for (const auto& [kind, k] : kinds) {
    std::array<uint64_t, kBuckets.size() + 1> counts;
    for (size_t b = 0; b < counts.size(); ++b) counts[b] = Load(k->buckets[b]);
    uint64_t cumulative = 0;
    for (uint64_t c : counts) cumulative += c;
    if (cumulative == 0) continue;
    cumulative = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += counts[b];
      AppendSample(&samples, "converge_processing_duration_seconds_bucket",
                   {{"kind", kind}, {"le", kBuckets[b].le}}, cumulative);
    }
    cumulative += counts.back();
    AppendSample(&samples, "converge_processing_duration_seconds_bucket",
                 {{"kind", kind}, {"le", "+Inf"}}, cumulative);
    AppendSeries(&samples, "converge_processing_duration_seconds_sum",
                 {{"kind", kind}});
    fmt::format_to(
        std::back_inserter(samples), " {}\n",
        static_cast<double>(k->sum_nanos.load(std::memory_order_relaxed)) /
            1e9);
    AppendSample(&samples, "converge_processing_duration_seconds_count",
                 {{"kind", kind}}, cumulative);
  }
  // Always present, even without series.
  AppendFamily(&out, "converge_processing_duration_seconds", "histogram",
               "Time to process one task, by task kind.", samples);

  samples.clear();
  for (const auto& [kind, k] : kinds) {
    const uint64_t ok = Load(k->ok), error = Load(k->error);
    if (ok + error == 0) continue;
    AppendSample(&samples, "converge_tasks_total",
                 {{"kind", kind}, {"result", "error"}}, error);
    AppendSample(&samples, "converge_tasks_total",
                 {{"kind", kind}, {"result", "ok"}}, ok);
  }
  AppendFamilyIfAny(&out, "converge_tasks_total", "counter",
                    "Tasks processed, by task kind and result.", samples);

  struct PerKind {
    std::string_view name;
    Counter KindSeries::*counter;
    std::string_view help;
  };
  for (const PerKind& family : {
           PerKind{"converge_retries_total", &KindSeries::retries,
                   "Tasks retried after an error, by task kind."},
           PerKind{"converge_dead_letters_total", &KindSeries::dead_letters,
                   "Tasks that gave up and went to the dead letters, by task "
                   "kind."},
           PerKind{"converge_requeues_total", &KindSeries::requeues,
                   "Tasks rescheduled after lock contention, by task kind."},
       }) {
    samples.clear();
    for (const auto& [kind, k] : kinds) {
      const uint64_t v = Load(k->*family.counter);
      if (v != 0) AppendSample(&samples, family.name, {{"kind", kind}}, v);
    }
    AppendFamilyIfAny(&out, family.name, "counter", family.help, samples);
  }

  samples.clear();
  const auto events = r.instance_events.Sorted();
  for (size_t l = 0; l < kLevels.size(); ++l) {
    for (const auto& [event, counters] : events) {
      const uint64_t v = Load((*counters)[l]);
      if (v == 0) continue;
      AppendSample(&samples, "converge_instances_total",
                   {{"level", ToString(kLevels[l])}, {"event", event}}, v);
    }
  }
  AppendFamilyIfAny(&out, "converge_instances_total", "counter",
                    "Converge instances created, hidden or ended, by level.",
                    samples);

  samples.clear();
  for (size_t l = 0; l < kLevels.size(); ++l) {
    const uint64_t not_sent = Load(r.summaries[l][0]);
    const uint64_t sent = Load(r.summaries[l][1]);
    if (not_sent + sent == 0) continue;
    AppendSample(&samples, "converge_summaries_total",
                 {{"level", ToString(kLevels[l])}, {"sent", BoolLabel(false)}},
                 not_sent);
    AppendSample(&samples, "converge_summaries_total",
                 {{"level", ToString(kLevels[l])}, {"sent", BoolLabel(true)}},
                 sent);
  }
  AppendFamilyIfAny(&out, "converge_summaries_total", "counter",
                    "Summaries due, by level and whether they were sent.",
                    samples);

  samples.clear();
  for (size_t l = 0; l < kLevels.size(); ++l) {
    if (!r.open_instances_set[l].load(std::memory_order_acquire)) continue;
    AppendSample(&samples, "converge_open_instances",
                 {{"level", ToString(kLevels[l])}},
                 r.open_instances[l].load(std::memory_order_relaxed));
  }
  AppendFamilyIfAny(&out, "converge_open_instances", "gauge",
                    "Open converge instances, by level, as last scanned.",
                    samples);

  samples.clear();
  for (const auto& [queue, q] : r.queues.Sorted()) {
    const std::array<std::pair<std::string_view, const Gauge*>, 3> states{{
        {"pending", &q->pending},
        {"in_flight", &q->in_flight},
        {"dead", &q->dead},
    }};
    for (const auto& [state, gauge] : states) {
      AppendSample(&samples, "converge_queue_length",
                   {{"queue", queue}, {"state", state}},
                   gauge->load(std::memory_order_relaxed));
    }
  }
  AppendFamilyIfAny(&out, "converge_queue_length", "gauge",
                    "Tasks in a queue, by queue and state, as last scanned.",
                    samples);
  return out;
}

}  // namespace converge
