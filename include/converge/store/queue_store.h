// QueueStore: durable task queues with due times, at-least-once delivery and
// a dead-letter list.
//
// A task becomes deliverable at its due time. Dequeue hands it out with a
// receipt and hides it for a visibility timeout; a task not acknowledged in
// time is delivered again (its old receipt goes stale). Task ids are unique
// per queue: a task can be scheduled exactly once until it is acknowledged.
//
// Thread safety: implementations are safe for concurrent use.

#ifndef CONVERGE_STORE_QUEUE_STORE_H_
#define CONVERGE_STORE_QUEUE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace converge {

struct Task {
  std::string id;          // unique within the queue; not empty
  std::string kind;        // "summary", "repoll", ... (the consumer's choice)
  int64_t subject_id = 0;  // the instance or action the task is about
  std::string payload;     // opaque to the store
  absl::Time due;          // deliverable at or after this time
  int32_t attempts = 0;    // deliveries so far (set by the store)
  std::string last_error;  // set by Retry / Bury
};

struct Delivery {
  Task task;
  std::string receipt;  // names this delivery; stale after redelivery
  absl::Time visible_until;
};

struct QueueStats {
  int64_t pending = 0;    // waiting, due or not
  int64_t in_flight = 0;  // delivered, not yet acknowledged
  int64_t dead = 0;       // in the dead-letter list
};

class QueueStore {
 public:
  virtual ~QueueStore() = default;

  // Schedules `task` (attempts starts at 0; last_error is kept as given).
  // Returns kAlreadyExists if a task
  // with that id is pending, in flight or dead in `queue`;
  // kInvalidArgument for an empty queue name or task id, or a name, id or
  // kind longer than the backend holds (MySQL: 255 bytes). Due times are
  // kept to the microsecond at least (Redis: a due time rounded up, `now`
  // down; tasks due in the same microsecond come in enqueue order). A
  // backend may keep only the first 65,535 bytes of an error text (MySQL).
  virtual absl::Status Enqueue(std::string_view queue, const Task& task) = 0;

  // Enqueue of each of `tasks`, where a task already in the queue is left
  // as it is (no error). A task refused (kInvalidArgument) or a store error
  // fails the call; some tasks may have been scheduled then (enqueueing
  // again is harmless). The default enqueues one by one; a SQL store in
  // one transaction.
  virtual absl::Status EnqueueMany(std::string_view queue,
                                   absl::Span<const Task> tasks) {
    for (const Task& task : tasks) {
      absl::Status st = Enqueue(queue, task);
      if (!st.ok() && st.code() != absl::StatusCode::kAlreadyExists) return st;
    }
    return absl::OkStatus();
  }

  // Delivers the pending task with the earliest due time <= now (ties by
  // enqueue order), or an in-flight task whose visibility has passed, and
  // hides it until now + visibility. Increments attempts. Returns nullopt if
  // nothing is due.
  virtual absl::StatusOr<std::optional<Delivery>> Dequeue(
      std::string_view queue, absl::Time now, absl::Duration visibility) = 0;

  // Acknowledges a delivery: the task is done and removed. Returns false if
  // the receipt is stale (the task was redelivered or already settled).
  virtual absl::StatusOr<bool> Ack(std::string_view queue,
                                   std::string_view receipt) = 0;

  // Puts a delivered task back, due at `due`, recording `error`. Returns
  // false if the receipt is stale.
  virtual absl::StatusOr<bool> Retry(std::string_view queue,
                                     std::string_view receipt, absl::Time due,
                                     std::string_view error) = 0;

  // Puts a delivered task back, due at `due`, with attempts reset to 0 and
  // last_error cleared: a new occurrence of the same task, not a failure (a
  // sleep re-poll, a requeue after lock contention). Earlier failed
  // attempts are forgotten too, so a task that alternates between errors
  // and contention is not buried. Returns false if the receipt is stale.
  virtual absl::StatusOr<bool> Reschedule(std::string_view queue,
                                          std::string_view receipt,
                                          absl::Time due) = 0;

  // Moves a delivered task to the dead-letter list, recording `error`.
  // Returns false if the receipt is stale.
  virtual absl::StatusOr<bool> Bury(std::string_view queue,
                                    std::string_view receipt,
                                    std::string_view error) = 0;

  // Dead tasks of `queue`, oldest burial first, at most `limit` (0 = all).
  virtual absl::StatusOr<std::vector<Task>> ListDead(std::string_view queue,
                                                     size_t limit) = 0;

  // Moves dead task `task_id` back to pending, due at `due`, attempts reset
  // to 0. Returns kNotFound if there is no such dead task.
  virtual absl::Status Redrive(std::string_view queue, std::string_view task_id,
                               absl::Time due) = 0;

  // Pending tasks of `queue` ordered by due time, at most `limit` (0 = all).
  virtual absl::StatusOr<std::vector<Task>> ListPending(std::string_view queue,
                                                        size_t limit) = 0;

  virtual absl::StatusOr<QueueStats> Stats(std::string_view queue) = 0;
};

}  // namespace converge

#endif  // CONVERGE_STORE_QUEUE_STORE_H_
