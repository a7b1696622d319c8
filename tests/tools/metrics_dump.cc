// Writes the Prometheus text of a registry with every metric family
// populated (every outcome and function, known and unknown task kinds and
// events, label values that need escaping or are not UTF-8) to stdout. The
// test metrics.promtool_check feeds it to `promtool check metrics`.

#include <cstdio>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "converge/metrics.h"
#include "converge/types.h"

int main() {
  using converge::ConvergeFunction;
  using converge::ConvergeType;
  using converge::Outcome;
  converge::Metrics m;

  const Outcome outcomes[] = {Outcome::kExecute, Outcome::kSkip,
                              Outcome::kSleep, Outcome::kApproval,
                              Outcome::kShield};
  const ConvergeFunction funcs[] = {
      ConvergeFunction::kSkipWhenSuccess, ConvergeFunction::kApproveWhenFailed,
      ConvergeFunction::kSkipWhenProceed, ConvergeFunction::kWaitWhenProceed,
      ConvergeFunction::kSkipWhenExceed,  ConvergeFunction::kDefense,
      ConvergeFunction::kCollect,         ConvergeFunction::kCollectAlarm,
      ConvergeFunction::kRelevance,       ConvergeFunction::kTrigger};
  for (Outcome o : outcomes) {
    m.RecordDecision(o, std::nullopt);
    for (ConvergeFunction f : funcs) m.RecordDecision(o, f);
  }
  for (int i = 0; i < 3; ++i) m.RecordLeaseContention();
  m.RecordLockFailure();

  const char* kinds[] = {
      "action",      "summary",       "subconverge", "repoll",
      "approval",    "sweep",         "retention",   "custom \"kind\"\\\n",
      "caf\xc3\xa9", "bad \xff utf-8"};
  int64_t micros = 10;
  for (const char* kind : kinds) {
    for (int i = 0; i < 20; ++i) {
      m.ObserveProcessing(kind, absl::Microseconds(micros), i % 5 != 0);
      micros = micros * 2 + 1;
      if (micros > 30'000'000) micros = 10;
    }
    m.RecordRetry(kind);
    m.RecordDeadLetter(kind);
    m.RecordRequeue(kind);
  }
  m.ObserveProcessing("action", absl::InfiniteDuration(), false);

  for (ConvergeType level : {ConvergeType::kAction, ConvergeType::kConverge}) {
    for (const char* event : {"created", "hidden", "ended", "other"}) {
      m.RecordInstance(level, event);
    }
    m.RecordSummary(level, true);
    m.RecordSummary(level, false);
    m.SetOpenInstances(level, 7);
  }
  m.SetQueueLength("converge.action", 12, 3, 1);
  m.SetQueueLength("converge.\"odd\"\\name\n", 0, 0, 0);

  const std::string text = m.RenderPrometheus();
  return std::fwrite(text.data(), 1, text.size(), stdout) == text.size() ? 0
                                                                         : 1;
}
