// The Redis client of converge::redis: a pool of hiredis connections to one
// server, pipelined round trips, scripts called by SHA, and the mapping of
// connection failures and error replies to absl codes. hiredis stays in
// this directory: no hiredis type appears in a public header.
//
// Thread safety: a Client is safe for concurrent use; each round trip
// borrows one connection from the pool.

#ifndef CONVERGE_ADAPTERS_REDIS_SRC_CLIENT_H_
#define CONVERGE_ADAPTERS_REDIS_SRC_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "converge/redis/redis_store.h"

namespace converge::redis::internal_redis {

// A reply, copied out of hiredis' reply objects.
struct Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<Reply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
};

// One command's arguments (binary safe).
struct Command {
  std::vector<std::string> args;

  Command& Arg(std::string_view s) {
    args.emplace_back(s);
    return *this;
  }
  Command& Arg(int64_t v);
};

// A Lua script: its text and SHA-1 (computed locally, as Redis does).
struct Script {
  Script(std::string_view name, std::string text);
  std::string name;  // for messages
  std::string text;
  std::string sha;
};

// "EVALSHA sha <n> keys... args...".
Command EvalCommand(const Script& script, absl::Span<const std::string> keys,
                    absl::Span<const std::string> args);

class Client {
 public:
  // Validates the options and opens the first connection (AUTH, SELECT,
  // PING). See OpenRedisStores for the errors.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const RedisOptions& options);
  ~Client();

  // Sends `commands` in one round trip and returns one reply per command
  // (error replies included, as replies of type kError). Fails with
  // kUnavailable / kDeadlineExceeded when the connection fails; the
  // connection is then discarded.
  absl::StatusOr<std::vector<Reply>> Pipeline(
      absl::Span<const Command> commands);
  absl::StatusOr<Reply> Call(const Command& command);

  // Runs `script` with EVALSHA. A NOSCRIPT reply (a restarted or flushed
  // server) is answered by SCRIPT LOAD and EVALSHA again, pipelined. An
  // error reply becomes a status (see ReplyStatus).
  absl::StatusOr<Reply> Eval(const Script& script,
                             absl::Span<const std::string> keys,
                             absl::Span<const std::string> args);
  // Runs every command of `evals` (EvalCommand's) in one round trip, and the
  // ones that got NOSCRIPT again after loading their scripts. `scripts[i]`
  // is the script of evals[i]. Error replies are left in the replies.
  absl::StatusOr<std::vector<Reply>> EvalPipeline(
      absl::Span<const Command> evals, absl::Span<const Script* const> scripts);

  // SCRIPT LOAD of every script, in one round trip.
  absl::Status LoadScripts(absl::Span<const Script* const> scripts);

  // The status of an error reply: "redis: <server>: <text>" with the code
  // of the Redis error class (redis_store.h, "Errors"); scripts raise
  // "INVALIDARGUMENT ...", "FAILEDPRECONDITION ..." and so on.
  absl::Status ReplyStatus(std::string_view text) const;

  // "host:port" or the socket path.
  const std::string& server() const { return server_; }
  const RedisOptions& options() const { return options_; }
  // Round trips made so far (every Pipeline, Call and Eval step).
  int64_t round_trips() const { return round_trips_.load(); }

 private:
  class Conn;
  explicit Client(const RedisOptions& options);

  // A connection from the pool (connecting if none is idle and the pool is
  // not full; waiting otherwise).
  absl::StatusOr<std::unique_ptr<Conn>> Borrow();
  // Returns `conn` to the pool, or closes it if it failed.
  void Return(std::unique_ptr<Conn> conn, bool healthy);
  absl::StatusOr<std::unique_ptr<Conn>> Open();
  absl::Status ConnStatus(const Conn& conn, std::string_view what) const;

  RedisOptions options_;
  std::string server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;  // connections open or being opened, idle or borrowed
  std::atomic<int64_t> round_trips_{0};
};

}  // namespace converge::redis::internal_redis

#endif  // CONVERGE_ADAPTERS_REDIS_SRC_CLIENT_H_
