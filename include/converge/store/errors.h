// Errors that stores give a meaning beyond their absl code.
//
// Thread safety: plain functions.

#ifndef CONVERGE_STORE_ERRORS_H_
#define CONVERGE_STORE_ERRORS_H_

#include <string>

#include "absl/status/status.h"

namespace converge {

// kUnavailable, marked as "the store as a whole cannot be used now": its
// server cannot be reached, or its database stayed locked by another
// writer past the busy timeout. Any other call made now would fail the
// same way, after the same wait. (Not for trouble of one row, one key or
// one connection: a row lock's timeout, a deadlock, a lost connection that
// a new one may replace, one shard of several.)
//
// Adapters mark such errors; the manager's group commit then fails a
// failed group's Submit calls at once, with this error, instead of running
// each again in a transaction of its own (which would wait the busy
// timeout once per call).
absl::Status StoreDownError(std::string message);

// True for an error made by StoreDownError (its code is kUnavailable).
bool IsStoreDown(const absl::Status& status);

// kAborted, marked as "the batch met another writer's work and was rolled
// back whole": nothing of it is stored, and running it again without
// RepoBatch::RetriedOnConflict sees the other writer's work (an action
// decided meanwhile, an instance ended meanwhile). The manager runs a
// batch of one action (Submit) once more, so, before returning the error.
absl::Status ConflictError(std::string message);

// True for an error made by ConflictError (its code is kAborted).
bool IsConflict(const absl::Status& status);

}  // namespace converge

#endif  // CONVERGE_STORE_ERRORS_H_
