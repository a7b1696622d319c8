// The converge functions (section 4 of the spec) as one pure function, so
// that each rule's behaviour can be tested without any store.
//
// Thread safety: pure.

#ifndef CONVERGE_FUNCTIONS_H_
#define CONVERGE_FUNCTIONS_H_

#include <cstdint>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "converge/model.h"

namespace converge {

struct FunctionInput {
  ConvergeFunction func = ConvergeFunction::kSkipWhenExceed;
  ConvergeType type = ConvergeType::kAction;  // of the evaluated object
  bool is_new = false;  // this evaluation creates the instance
  int64_t count = 1;    // effective threshold
  // The executed set of the instance, without the evaluated object. Only
  // the functions for which FunctionReadsStatuses() is true read the
  // members; the others read only its size, which may be given instead as
  // executed_count (>= 0 overrides executed.size()).
  absl::Span<const MemberStatus> executed;
  int64_t executed_count = -1;
  bool biz_converge_existed = false;  // the business counter passed
  // For skip_when_proceed's "finished successfully inside the window".
  absl::Time now;
  int64_t window_seconds = 0;
};

struct FunctionResult {
  Outcome outcome = Outcome::kExecute;
  bool schedule_summary = false;  // collect / collect_alarm on creation
};

FunctionResult EvaluateFunction(const FunctionInput& in);

// True for the functions that read the statuses of the executed set
// (skip_when_success, approve_when_failed, skip_when_proceed,
// wait_when_proceed); the others only count it.
bool FunctionReadsStatuses(ConvergeFunction func);

}  // namespace converge

#endif  // CONVERGE_FUNCTIONS_H_
