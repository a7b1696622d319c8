// The child of the two-process test (two_process_test.cc): opens a SQLite
// file, makes a ConvergeManager and a Processor on it, and runs tasks until
// the task queue holds nothing but the perpetual sweep.
//
//   converge_sqlite_two_process_child DB INSTANT_FILE
//
// Protocol on stdin/stdout: prints "ready" once the store is open, waits for
// a line on stdin (so that the parent can start several children at once),
// drains, then prints "done processed=N requeued=N retried=N dead=N
// stale=N errors=N" (ProcessorStats) and exits 0. Errors go to stderr, exit
// status 1; usage errors exit 2.
//
// Time is the instant file's (two_process.h): every process of a run reads
// one virtual clock, which LockstepQueue advances to the next due task only
// when no task is in flight in any of them.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/processor.h"
#include "converge/sqlite/sqlite_store.h"
#include "converge/store/wrappers.h"
#include "two_process.h"

namespace converge::sqlite::two_process {
namespace {

// Reads the shared virtual time.
class SharedClock final : public Clock {
 public:
  explicit SharedClock(SharedInstant* shared) : shared_(shared) {}
  absl::Time Now() const override {
    return absl::FromUnixNanos(shared_->now_ns.load());
  }

 private:
  SharedInstant* shared_;
};

// The queue as every process of the run sees it, in lockstep: a delivery
// happens only at the shared instant, and the instant moves to the next
// due task only when nothing is pending at it and no task is in flight in
// any process. Deliveries and moves are made under an exclusive flock on
// the instant file, so no process can take a task while another moves the
// clock. Settling (Ack and the others) needs no lock: it only ends a
// delivery, after the follow-up tasks the handler queued are committed.
class LockstepQueue final : public QueueStoreWrapper {
 public:
  // Longer than any task of the test is due after the instant before it.
  static constexpr absl::Duration kHorizon = absl::Hours(24 * 365);

  LockstepQueue(QueueStore* target, SharedInstant* shared, int lock_fd)
      : QueueStoreWrapper(target), shared_(shared), lock_fd_(lock_fd) {}

  // True once the queue held nothing but the sweep, with nothing in flight:
  // no task can appear any more (only a running task queues one).
  bool done() const { return done_; }

  absl::StatusOr<std::optional<Delivery>> Dequeue(
      std::string_view queue, absl::Time /*now*/,
      absl::Duration visibility) override {
    FileLock lock(lock_fd_);
    if (!lock.ok()) return absl::InternalError("flock failed");
    const absl::Time now = absl::FromUnixNanos(shared_->now_ns.load());
    absl::StatusOr<std::optional<Delivery>> d =
        target()->Dequeue(queue, now, visibility);
    if (!d.ok()) return d;
    if (d->has_value()) {
      ++shared_->in_flight;
      return d;
    }
    // Nothing pending at this instant. A task still running elsewhere may
    // queue one that is due now, and must finish before the clock moves.
    if (shared_->in_flight.load() > 0) return std::optional<Delivery>();
    // Move to the earliest pending task: take it (Dequeue with a time past
    // every due time delivers exactly that task; QueueStore::ListPending
    // would tell its due time too, but costs a scan of the queue on SQLite)
    // and set the clock to its due time.
    d = target()->Dequeue(queue, now + kHorizon, visibility);
    if (!d.ok()) return d;
    if (!d->has_value()) {
      done_ = true;  // not even the sweep: the processor would have made it
      return d;
    }
    const Delivery& next = **d;
    if (next.task.kind == "sweep") {
      // The sweep is the test's only perpetual task (retention is off).
      // With nothing else pending, the work is done: put it back as it was.
      absl::StatusOr<QueueStats> stats = target()->Stats(queue);
      if (!stats.ok()) return stats.status();
      if (stats->pending == 0) {
        absl::StatusOr<bool> back =
            target()->Reschedule(queue, next.receipt, next.task.due);
        if (!back.ok()) return back.status();
        done_ = true;
        return std::optional<Delivery>();
      }
    }
    shared_->now_ns.store(absl::ToUnixNanos(next.task.due));
    ++shared_->in_flight;
    return d;
  }

  absl::StatusOr<bool> Ack(std::string_view queue,
                           std::string_view receipt) override {
    return Settled(target()->Ack(queue, receipt));
  }
  absl::StatusOr<bool> Retry(std::string_view queue, std::string_view receipt,
                             absl::Time due, std::string_view error) override {
    return Settled(target()->Retry(queue, receipt, due, error));
  }
  absl::StatusOr<bool> Reschedule(std::string_view queue,
                                  std::string_view receipt,
                                  absl::Time due) override {
    return Settled(target()->Reschedule(queue, receipt, due));
  }
  absl::StatusOr<bool> Bury(std::string_view queue, std::string_view receipt,
                            std::string_view error) override {
    return Settled(target()->Bury(queue, receipt, error));
  }

 private:
  struct FileLock {
    explicit FileLock(int fd) : fd(fd), locked(flock(fd, LOCK_EX) == 0) {}
    ~FileLock() {
      if (locked) flock(fd, LOCK_UN);
    }
    bool ok() const { return locked; }
    int fd;
    bool locked;
  };

  absl::StatusOr<bool> Settled(absl::StatusOr<bool> r) {
    // A failed settle leaves the task in flight in the store; the child
    // exits on the error, and the parent fails the test.
    --shared_->in_flight;
    ++shared_->settled;
    return r;
  }

  SharedInstant* shared_;
  int lock_fd_;
  bool done_ = false;
};

int Run(const std::string& db, const std::string& instant_file) {
  const int fd = open(instant_file.c_str(), O_RDWR);
  if (fd < 0) {
    std::perror(instant_file.c_str());
    return 1;
  }
  void* map = mmap(nullptr, kInstantFileSize, PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* shared = static_cast<SharedInstant*>(map);
  SharedClock clock(shared);

  SqliteOptions options;
  options.path = db;
  options.clock = &clock;
  // No fsync: the test kills no process and cuts no power, and durability
  // is not what it checks (locking and isolation are the same in every
  // mode). The other process may hold the write lock for a while on a
  // loaded machine.
  options.synchronous = Synchronous::kOff;
  options.busy_timeout = absl::Seconds(30);
  absl::StatusOr<SqliteStores> stores = OpenSqliteStores(options);
  if (!stores.ok()) {
    std::cerr << stores.status() << "\n";
    return 1;
  }
  LockstepQueue queue(stores->queue.get(), shared, fd);
  Stores view = stores->view();
  view.queue = &queue;
  absl::StatusOr<std::unique_ptr<ConvergeManager>> manager =
      ConvergeManager::Create(view, &clock, TestManagerOptions());
  if (!manager.ok()) {
    std::cerr << manager.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Processor>> processor =
      Processor::Create(manager->get(), TestProcessorOptions());
  if (!processor.ok()) {
    std::cerr << processor.status() << "\n";
    return 1;
  }

  std::cout << "ready" << std::endl;
  std::string go;
  if (!std::getline(std::cin, go)) return 1;

  for (;;) {
    const int64_t settled = shared->settled.load();
    absl::StatusOr<bool> ran = (*processor)->RunOnce();
    if (!ran.ok()) {
      std::cerr << "RunOnce: " << ran.status() << "\n";
      return 1;
    }
    if (*ran) continue;
    if (queue.done()) break;
    // Another process is running the last task of this instant: nothing can
    // be taken before a task is settled (real time: the other process is
    // real).
    while (shared->settled.load() == settled) usleep(50);
  }
  const ProcessorStats s = (*processor)->stats();
  std::cout << "done processed=" << s.processed << " requeued=" << s.requeued
            << " retried=" << s.retried << " dead=" << s.dead
            << " stale=" << s.stale << " errors=" << s.errors << std::endl;
  return 0;
}

}  // namespace
}  // namespace converge::sqlite::two_process

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DB INSTANT_FILE\n", argv[0]);
    return 2;
  }
  return converge::sqlite::two_process::Run(argv[1], argv[2]);
}
