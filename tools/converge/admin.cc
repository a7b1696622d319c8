#include "admin.h"

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "events.h"
#include "store_uri.h"

namespace converge::cli {
namespace {

std::string Str(std::string_view s) { return std::string(s); }

// "1700000000 (2023-11-14T22:13:20Z)"
std::string TimeText(absl::Time t) {
  return absl::StrCat(
      TimeToJson(t), " (",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone()), ")");
}

void NoteEphemeral(const tools::OpenedStore& store) {
  if (store.ephemeral) {
    std::cout << "note: " << store.uri
              << " is a fresh in-memory store, empty in every run; use a "
                 "persistent store to inspect state across runs\n";
  }
}

absl::StatusOr<tools::OpenedStore> OpenExisting(const StoreFlags& flags) {
  return tools::OpenStore(flags.store_uri, RealClock::Default(),
                          tools::OpenMode::kMustExist, flags.repo_uri);
}

}  // namespace

StoreFlags DefaultStoreFlags() {
  return StoreFlags{tools::DefaultStoreUri(), tools::DefaultRepoUri()};
}

int RunInspect(const StoreFlags& flags) {
  absl::StatusOr<tools::OpenedStore> store = OpenExisting(flags);
  if (!store.ok()) {
    std::cerr << "converge inspect: " << store.status().message() << "\n";
    return 1;
  }
  auto fail = [](const absl::Status& st) {
    std::cerr << "converge inspect: " << st.message() << "\n";
    return 1;
  };
  const std::string queue = ManagerOptions().task_queue;

  std::cout << "store: " << store->uri << "\n";
  NoteEphemeral(*store);

  absl::StatusOr<std::vector<ConvergeInstance>> open =
      store->stores.repo->ListOpen(0);
  if (!open.ok()) return fail(open.status());
  std::cout << "\nopen instances: " << open->size() << "\n";
  for (const ConvergeInstance& inst : *open) {
    std::cout << "  id=" << inst.id
              << " type=" << Str(ToString(inst.converge_type))
              << " func=" << Str(ToString(inst.converge_func))
              << " dimension=" << inst.dimension
              << " created=" << TimeText(inst.create_time)
              << " visible=" << (inst.is_visible ? "true" : "false") << "\n";
  }

  absl::StatusOr<QueueStats> stats = store->stores.queue->Stats(queue);
  if (!stats.ok()) return fail(stats.status());
  std::cout << "\nqueue \"" << queue << "\": pending=" << stats->pending
            << " in_flight=" << stats->in_flight << " dead=" << stats->dead
            << "\n";

  absl::StatusOr<std::vector<Task>> dead =
      store->stores.queue->ListDead(queue, 0);
  if (!dead.ok()) return fail(dead.status());
  std::cout << "\ndead letters: " << dead->size() << "\n";
  for (const Task& task : *dead) {
    std::cout << "  id=" << task.id << " kind=" << task.kind
              << " subject=" << task.subject_id << " attempts=" << task.attempts
              << " due=" << TimeText(task.due) << "\n"
              << "    error: " << task.last_error << "\n";
  }
  return 0;
}

int RunEnd(const StoreFlags& flags, int64_t converge_id) {
  absl::StatusOr<tools::OpenedStore> store = OpenExisting(flags);
  if (!store.ok()) {
    std::cerr << "converge end: " << store.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<ConvergeManager>> manager =
      ConvergeManager::Create(store->stores, RealClock::Default());
  if (!manager.ok()) {
    std::cerr << "converge end: " << manager.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<bool> ended = (*manager)->EndInstance(converge_id);
  if (ended.status().code() == absl::StatusCode::kNotFound) {
    std::cerr << "converge end: instance " << converge_id << " not found in "
              << store->uri
              << (store->ephemeral
                      ? " (a fresh in-memory store is always empty)"
                      : "")
              << "\n";
    return 1;
  }
  if (!ended.ok()) {
    std::cerr << "converge end: " << ended.status().message() << "\n";
    return 1;
  }
  if (*ended) {
    std::cout << "instance " << converge_id << ": ended (it was open)\n";
  } else {
    std::cout << "instance " << converge_id
              << ": already ended (it was not open); nothing changed\n";
  }
  return 0;
}

}  // namespace converge::cli
