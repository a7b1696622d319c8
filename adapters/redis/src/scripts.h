// The Lua scripts of converge::redis: one per store operation, each atomic
// on the server. docs/adapters/redis.md describes their keys and arguments;
// the texts in scripts.cc say the same next to the code.

#ifndef CONVERGE_ADAPTERS_REDIS_SRC_SCRIPTS_H_
#define CONVERGE_ADAPTERS_REDIS_SRC_SCRIPTS_H_

#include <vector>

#include "client.h"

namespace converge::redis::internal_redis {

struct Scripts {
  Scripts();

  // LockStore.
  Script lease_acquire;
  Script lease_release;
  Script lease_extend;
  // WindowStore.
  Script window_apply;
  Script window_check;  // the adds of an Apply spread over servers
  Script window_size;
  Script window_remove;
  Script counter_increment;
  Script counter_value;
  Script key_delete;
  // QueueStore.
  Script queue_enqueue;
  Script queue_dequeue;
  Script queue_ack;
  Script queue_put_back;  // Retry and Reschedule
  Script queue_bury;
  Script queue_list_dead;
  Script queue_redrive;
  Script queue_list_pending;
  Script queue_stats;

  std::vector<const Script*> all() const;
};

// The process-wide script set (immutable).
const Scripts& GetScripts();

}  // namespace converge::redis::internal_redis

#endif  // CONVERGE_ADAPTERS_REDIS_SRC_SCRIPTS_H_
