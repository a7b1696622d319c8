// AsUnprivileged: runs a check that needs file permissions to hold in a
// child process as user and group 65534 (nobody) when the test runs as root
// (root writes into read-only directories), and as itself otherwise. The
// child reports a string through a pipe; the test fails if it does not exit
// cleanly.
//
// Thread safety: call it from the test's thread, with no other threads of
// the test holding locks that `fn` needs (the child is forked).

#ifndef CONVERGE_TESTS_SUPPORT_UNPRIVILEGED_H_
#define CONVERGE_TESTS_SUPPORT_UNPRIVILEGED_H_

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <string>

namespace converge::testing {

// Returns what `fn` returned.
inline std::string AsUnprivileged(const std::function<std::string()>& fn) {
  if (geteuid() != 0) return fn();
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    const std::string out = fn();
    if (write(fds[1], out.data(), out.size()) < 0) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return out;
}

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_UNPRIVILEGED_H_
