// Server processes for tests (redis_server.h, mysql_server.h): a free
// loopback port, a server started with its own stdio, stopped by PID, and
// the CTest fixture's `start|stop DIR` command line.

#ifndef CONVERGE_TESTS_SUPPORT_SERVER_PROCESS_H_
#define CONVERGE_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace converge::testing {

// A port nothing listens on right now (the kernel's choice for port 0); 0
// if none could be had.
int FreePort();

// True while `pid` runs (reaps it if it is our child and has exited).
bool ProcessAlive(pid_t pid);

// Forks and execs args[0] with `args`, stdin from /dev/null, stdout and
// stderr appended to `log`. With `die_with_parent` it gets SIGKILL when the
// calling thread's process exits (a crashed test cannot leave it behind);
// otherwise it gets a session of its own (it outlives the fixture process
// and is stopped by PID).
absl::StatusOr<pid_t> SpawnProcess(std::vector<std::string> args,
                                   const std::string& log,
                                   bool die_with_parent);

// Stops `pid`: SIGTERM, then SIGKILL after `grace_seconds`. Reaps it if it
// is our child.
absl::Status StopProcess(pid_t pid, int grace_seconds);

// The CTest fixture's program: `<program> start DIR` runs `start(DIR)`,
// which starts the server, writes its files into DIR and returns its PID,
// kept in DIR/pid; `<program> stop DIR` stops the process named by DIR/pid
// with `stop` if its command line contains `name` (not a reused PID). A
// server left behind by an interrupted run is stopped before a new one
// starts. Returns main's exit code.
int FixtureMain(
    int argc, char** argv, const std::string& name,
    const std::function<absl::StatusOr<pid_t>(const std::string&)>& start,
    const std::function<absl::Status(pid_t)>& stop);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_SERVER_PROCESS_H_
