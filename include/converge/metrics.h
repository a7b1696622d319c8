// Metrics: converge's operational counters, gauges and the processing-time
// histogram, rendered in the Prometheus text exposition format (0.0.4).
//
// A Metrics is a registry that the manager, the processor and the host feed,
// and that the host exposes however it serves HTTP (RenderPrometheus returns
// the text; converge serves nothing itself). docs/metrics.md lists every
// metric, its labels and what it means, and shows how to expose them.
//
// Thread safety: every method is safe to call concurrently. The hot-path
// calls (RecordDecision, RecordLeaseContention, RecordLockFailure,
// RecordInstance and RecordSummary for the known events, and the per-kind
// calls for the known task kinds) are lock-free: relaxed atomic increments on
// enum-indexed arrays. A task kind or queue name outside the known set is
// looked up in a mutex-guarded map once per call; its counters are atomics
// too. RenderPrometheus reads the atomics without stopping writers, so a
// scrape taken during updates may see some of a call's effects and not
// others (as with any Prometheus client); each series is itself consistent.
//
// Cardinality: the labels come from enums and from the small, code-defined
// sets of task kinds, instance events and queue names; never label by
// anything a user chooses (strategy ids, receivers, dimensions).

#ifndef CONVERGE_METRICS_H_
#define CONVERGE_METRICS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "converge/types.h"

namespace converge {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // converge_decisions_total{outcome,func}: one decision. `func` is nullopt
  // when no converge function ran (shielded action, illegal config, below the
  // threshold); it renders as func="none".
  void RecordDecision(Outcome outcome, std::optional<ConvergeFunction> func);

  // converge_lease_contention_total: one failed attempt to take a dimension
  // lease because it was busy.
  void RecordLeaseContention();

  // converge_process_lock_failures_total: an evaluation gave up because the
  // lease stayed busy or was lost (the design note's
  // converge_process_lock_failures).
  void RecordLockFailure();

  // converge_processing_duration_seconds{kind} (histogram) and
  // converge_tasks_total{kind,result="ok"|"error"}: one processed task.
  // Negative durations count as 0; durations above 24 h count as 24 h, so
  // that an infinite duration cannot overflow the sum.
  void ObserveProcessing(std::string_view task_kind, absl::Duration d, bool ok);

  // converge_retries_total{kind}: a task was retried after an error.
  void RecordRetry(std::string_view task_kind);
  // converge_dead_letters_total{kind}: a task gave up and went to the dead
  // letters.
  void RecordDeadLetter(std::string_view task_kind);
  // converge_requeues_total{kind}: a task was rescheduled after lock
  // contention.
  void RecordRequeue(std::string_view task_kind);

  // converge_instances_total{level,event}: a converge instance was created,
  // hidden or ended. `event` is "created", "hidden" or "ended" (lock-free);
  // any other value is counted too, through the map.
  void RecordInstance(ConvergeType level, std::string_view event);

  // converge_summaries_total{level,sent="true"|"false"}: a summary was sent,
  // or was due but not sent.
  void RecordSummary(ConvergeType level, bool sent);

  // Gauges, set by whoever scans the stores. The last call wins.
  // converge_queue_length{queue,state="pending"|"in_flight"|"dead"}.
  void SetQueueLength(std::string_view queue, int64_t pending,
                      int64_t in_flight, int64_t dead);
  // converge_open_instances{level}.
  void SetOpenInstances(ConvergeType level, int64_t n);

  // The registry in the Prometheus text exposition format 0.0.4 (serve it as
  // "text/plain; version=0.0.4; charset=utf-8"): a HELP and a TYPE line per
  // family, label values escaped (and invalid UTF-8 replaced by U+FFFD),
  // histograms as cumulative _bucket{le=...} series ending in le="+Inf", then
  // _sum and _count. Only series that have been recorded or set appear, except
  // the unlabelled counters (always, from 0) and the processing-duration
  // family (always its HELP and TYPE lines), so a fresh registry still renders
  // valid text. Counters with a two-valued label (result, sent) show both
  // values once either is recorded, so ratios need no absent() guards.
  // Families come in a fixed order, series by enum order for enum labels
  // and sorted for string labels.
  std::string RenderPrometheus() const;

 private:
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

}  // namespace converge

#endif  // CONVERGE_METRICS_H_
