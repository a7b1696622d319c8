// A worker of the fault test (fault_test.cc): a Processor on Redis + SQLite
// that drains the shared task queue until SIGTERM, riding out restarts of
// the server. On exit it writes one line per action it decided itself (not
// replayed): "<action id> <unix ms>", and prints its processor stats.
//
//   converge_redis_fault_worker PORT KEY_PREFIX SQLITE_PATH OUT_FILE

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "fault_common.h"

namespace {

std::atomic<bool> stop{false};
void OnTerm(int) { stop.store(true); }

struct Recorder : converge::ManagerListener {
  void OnDecision(const converge::Decision& d) override {
    if (d.replayed) return;
    std::lock_guard<std::mutex> lock(mu);
    decided.emplace_back(d.action_id, absl::ToUnixMillis(absl::Now()));
  }
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> decided;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s PORT KEY_PREFIX SQLITE_PATH OUT_FILE\n",
                 argv[0]);
    return 2;
  }
  signal(SIGTERM, OnTerm);
  converge::redis::RedisOptions ro;
  ro.port = std::atoi(argv[1]);
  ro.key_prefix = argv[2];
  ro.connect_timeout = absl::Milliseconds(500);
  ro.command_timeout = absl::Seconds(2);
  ro.pool_size = 4;
  auto stores = converge::redis::OpenRedisStores(ro);
  converge::sqlite::SqliteOptions so;
  so.path = argv[3];
  so.synchronous = converge::sqlite::Synchronous::kNormal;
  so.check_on_open = false;
  auto sql = converge::sqlite::OpenSqliteStores(so);
  if (!stores.ok() || !sql.ok()) {
    std::fprintf(
        stderr, "worker: %s\n",
        (stores.ok() ? sql.status() : stores.status()).ToString().c_str());
    return 1;
  }
  stores->repo = std::move(sql->repo);
  Recorder recorder;
  converge::ManagerOptions mo = converge::fault::FaultManagerOptions();
  mo.listener = &recorder;
  auto manager = converge::ConvergeManager::Create(
      stores->view(), converge::RealClock::Default(), mo);
  if (!manager.ok()) {
    std::fprintf(stderr, "worker: %s\n", manager.status().ToString().c_str());
    return 1;
  }
  auto processor = converge::Processor::Create(
      manager->get(), converge::fault::FaultProcessorOptions());
  if (!processor.ok() || !(*processor)->Start().ok()) {
    std::fprintf(stderr, "worker: cannot start the processor\n");
    return 1;
  }
  while (!stop.load()) usleep(20 * 1000);
  (*processor)->Stop();

  std::ofstream out(argv[4]);
  for (const auto& [id, ms] : recorder.decided) out << id << " " << ms << "\n";
  out.close();
  const converge::ProcessorStats st = (*processor)->stats();
  std::printf(
      "worker %d: processed %lld requeued %lld retried %lld dead %lld stale "
      "%lld errors %lld decided %zu\n",
      static_cast<int>(getpid()), static_cast<long long>(st.processed),
      static_cast<long long>(st.requeued), static_cast<long long>(st.retried),
      static_cast<long long>(st.dead), static_cast<long long>(st.stale),
      static_cast<long long>(st.errors), recorder.decided.size());
  return 0;
}
