// Replay demo: feeds a recorded alert storm through a ConvergeManager and
// prints what was converged.
//
//   converge_replay_demo examples/data/storm.jsonl
//
// The input is JSON lines, one action per line with the converge_config of
// its strategy relation (see converge::json::ParseActionEvent;
// scripts/gen_storm.py writes such files). Lines are submitted in file order
// on the in-memory stores, with a VirtualClock set to each action's time (it
// never goes backwards), so an hour of alerts replays in milliseconds and the
// result is the same on every run. Blank lines are skipped. A line that does
// not parse, or that Submit rejects, stops the replay with "line N: <status>"
// on stderr and exit status 1; nothing after it is applied.
//
// Only decisions are taken here: nothing reports action statuses, re-polls
// sleeping actions, or runs the summary tasks that collect schedules (the
// later `converge replay` tool does that).
//
// The report: actions in, the outcome counts (execute / skip / sleep /
// approval / shield), instances created (decisions with primary set), the same
// per converge function, the notifications that would have been sent without
// converge (every action) and with it (the executed ones), the reduction, the
// wall time, and the first five instances created with their relations.

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/config.h"
#include "converge/json/json.h"
#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "converge/model.h"
#include "converge/types.h"

namespace {

constexpr std::array<converge::Outcome, 5> kOutcomes = {
    converge::Outcome::kExecute, converge::Outcome::kSkip,
    converge::Outcome::kSleep, converge::Outcome::kApproval,
    converge::Outcome::kShield};

struct Tally {
  int64_t actions = 0;
  std::array<int64_t, kOutcomes.size()> outcomes{};
  int64_t instances = 0;

  void Add(const converge::Decision& d) {
    ++actions;
    ++outcomes[static_cast<size_t>(d.outcome)];
    if (d.primary) ++instances;
  }
  int64_t count(converge::Outcome o) const {
    return outcomes[static_cast<size_t>(o)];
  }
};

std::string Str(std::string_view s) { return std::string(s); }

bool Blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

int Fail(int64_t line_no, const absl::Status& status) {
  std::cerr << "line " << line_no << ": " << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " STORM.jsonl\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << argv[1] << ": cannot open\n";
    return 1;
  }

  converge::VirtualClock clock;
  absl::StatusOr<converge::memory::MemoryStores> stores =
      converge::memory::NewMemoryStores({&clock});
  if (!stores.ok()) {
    std::cerr << "memory stores: " << stores.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<converge::ConvergeManager>> manager =
      converge::ConvergeManager::Create(stores->view(), &clock,
                                        converge::ManagerOptions());
  if (!manager.ok()) {
    std::cerr << "manager: " << manager.status() << "\n";
    return 1;
  }

  Tally total;
  std::map<converge::ConvergeFunction, Tally> by_function;
  std::vector<int64_t> created;  // instance ids, in creation order
  absl::Time first_time = absl::InfiniteFuture();
  absl::Time last_time = absl::InfinitePast();

  auto wall_start = std::chrono::steady_clock::now();
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (Blank(line)) continue;
    absl::StatusOr<converge::json::ActionEvent> event =
        converge::json::ParseActionEvent(line);
    if (!event.ok()) return Fail(line_no, event.status());

    absl::Time t = event->action.create_time;
    if (t > clock.Now()) clock.Set(t);  // never backwards
    first_time = std::min(first_time, t);
    last_time = std::max(last_time, t);

    absl::StatusOr<converge::Decision> decision =
        (*manager)->Submit(event->action, event->config);
    if (!decision.ok()) return Fail(line_no, decision.status());
    total.Add(*decision);
    by_function[event->config.converge_func].Add(*decision);
    if (decision->primary && decision->converge_id.has_value()) {
      created.push_back(*decision->converge_id);
    }
  }
  if (in.bad()) {
    std::cerr << argv[1] << ": read error after line " << line_no << "\n";
    return 1;
  }
  double wall_ms = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - wall_start)
                       .count();

  // ---- the report ----
  std::printf("converge replay demo: %s\n", argv[1]);
  double span =
      total.actions == 0 ? 0.0 : absl::ToDoubleSeconds(last_time - first_time);
  std::printf("  actions in            %8lld  (%.0f s of virtual time)\n",
              static_cast<long long>(total.actions), span);
  for (converge::Outcome o : kOutcomes) {
    std::printf("    %-19s %8lld\n", Str(converge::ToString(o)).c_str(),
                static_cast<long long>(total.count(o)));
  }
  std::printf("  instances created     %8lld\n",
              static_cast<long long>(total.instances));

  std::printf("\n  %-18s %7s %7s %7s %7s %8s %7s %9s\n", "function", "actions",
              "execute", "skip", "sleep", "approval", "shield", "instances");
  for (const auto& [func, tally] : by_function) {
    std::printf(
        "  %-18s %7lld %7lld %7lld %7lld %8lld %7lld %9lld\n",
        Str(converge::ToString(func)).c_str(),
        static_cast<long long>(tally.actions),
        static_cast<long long>(tally.count(converge::Outcome::kExecute)),
        static_cast<long long>(tally.count(converge::Outcome::kSkip)),
        static_cast<long long>(tally.count(converge::Outcome::kSleep)),
        static_cast<long long>(tally.count(converge::Outcome::kApproval)),
        static_cast<long long>(tally.count(converge::Outcome::kShield)),
        static_cast<long long>(tally.instances));
  }

  int64_t executed = total.count(converge::Outcome::kExecute);
  double reduction = total.actions == 0
                         ? 0.0
                         : 100.0 *
                               static_cast<double>(total.actions - executed) /
                               static_cast<double>(total.actions);
  std::printf("\n  notifications without converge %6lld\n",
              static_cast<long long>(total.actions));
  std::printf("  notifications with converge    %6lld  (%.1f%% fewer)\n",
              static_cast<long long>(executed), reduction);
  std::printf("  wall time                      %6.1f ms\n", wall_ms);

  if (!created.empty()) {
    std::printf("\n  first instances created:\n");
    std::printf("  %6s  %-18s %-9s %9s\n", "id", "function", "type",
                "relations");
  }
  for (size_t i = 0; i < created.size() && i < 5; ++i) {
    absl::StatusOr<converge::ConvergeInstance> instance =
        stores->repo->GetInstance(created[i]);
    absl::StatusOr<std::vector<converge::ConvergeRelation>> relations =
        stores->repo->Relations(created[i]);
    if (!instance.ok() || !relations.ok()) {
      std::cerr << "instance " << created[i] << ": "
                << (instance.ok() ? relations.status() : instance.status())
                << "\n";
      return 1;
    }
    std::printf("  %6lld  %-18s %-9s %9zu\n",
                static_cast<long long>(instance->id),
                Str(converge::ToString(instance->converge_func)).c_str(),
                Str(converge::ToString(instance->converge_type)).c_str(),
                relations->size());
  }
  return 0;
}
