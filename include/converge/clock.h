// Time source. Every component takes a Clock so that tests and the replay
// tool run on virtual time.
//
// Thread safety: implementations must be safe to call from many threads.

#ifndef CONVERGE_CLOCK_H_
#define CONVERGE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace converge {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time (absl::Now()).
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance.
  static RealClock* Default();
};

// A clock that only moves when told to. Starts at the Unix epoch unless
// given a start time.
class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(absl::Time start = absl::UnixEpoch())
      : nanos_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override {
    return absl::FromUnixNanos(nanos_.load(std::memory_order_acquire));
  }
  void Set(absl::Time t) {
    nanos_.store(absl::ToUnixNanos(t), std::memory_order_release);
  }
  void SetSeconds(double unix_seconds) {
    Set(absl::UnixEpoch() + absl::Seconds(unix_seconds));
  }
  void Advance(absl::Duration d) {
    nanos_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> nanos_;
};

}  // namespace converge

#endif  // CONVERGE_CLOCK_H_
