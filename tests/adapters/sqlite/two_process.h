// What the two-process test (two_process_test.cc) and its child
// (two_process_child.cc) share: the options every processor of the test
// runs with, and the layout of the instant file.
//
// The instant file is the test's stand-in for the one clock all processes
// of a host share. It holds the virtual time every process of one run reads
// (SharedInstant::now_ns), the number of tasks delivered and not yet
// settled across those processes (SharedInstant::in_flight), and how many
// were settled so far (SharedInstant::settled), which an idle process
// watches. The children
// advance the time only while no task is in flight, under an flock(2) on the
// same file: see LockstepQueue in two_process_child.cc, and the test's
// comment for why.

#ifndef CONVERGE_TESTS_ADAPTERS_SQLITE_TWO_PROCESS_H_
#define CONVERGE_TESTS_ADAPTERS_SQLITE_TWO_PROCESS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "converge/manager.h"
#include "converge/processor.h"

namespace converge::sqlite::two_process {

// Mapped MAP_SHARED by every process of a run; lock-free atomics work
// across processes.
struct SharedInstant {
  std::atomic<int64_t> now_ns;
  std::atomic<int64_t> in_flight;
  std::atomic<int64_t> settled;
};
static_assert(std::atomic<int64_t>::is_always_lock_free);
inline constexpr size_t kInstantFileSize = 4096;

// Follow-up tasks are due at offsets that never land on a whole second (the
// actions' instants) nor on each other's instants within the workload's
// span: summaries at x.25 s, re-polls at multiples of 30.001 s after a
// whole second, approval timeouts at x.0003 s, the sweep at multiples of
// 60.000001 s after the start. So each instant holds either actions or one
// kind of follow-up, and the tasks of one instant touch disjoint state (see
// two_process_test.cc).
inline ManagerOptions TestManagerOptions() {
  ManagerOptions o;
  o.summary_delay = absl::Milliseconds(60250);
  o.repoll_interval = absl::Milliseconds(30001);
  o.approval_timeout = absl::Minutes(30) + absl::Microseconds(300);
  return o;
}

// The retention job is off: with the default 7-day retention it would
// delete nothing within the workload's span, and without it the queue ends
// with one perpetual task (the sweep) besides nothing.
inline ProcessorOptions TestProcessorOptions() {
  ProcessorOptions o;
  o.sweep_interval = absl::Seconds(60) + absl::Microseconds(1);
  o.retention_interval = absl::ZeroDuration();
  return o;
}

}  // namespace converge::sqlite::two_process

#endif  // CONVERGE_TESTS_ADAPTERS_SQLITE_TWO_PROCESS_H_
