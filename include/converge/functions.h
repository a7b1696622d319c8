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
  // The executed set of the instance, without the evaluated object.
  absl::Span<const MemberStatus> executed;
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

}  // namespace converge

#endif  // CONVERGE_FUNCTIONS_H_
