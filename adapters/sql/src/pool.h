// Internal: the connection pool of a SQL backend (SQLite, MySQL). Not
// installed.

#ifndef CONVERGE_ADAPTERS_SQL_SRC_POOL_H_
#define CONVERGE_ADAPTERS_SQL_SRC_POOL_H_

#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace converge::sql {

// Idle connections of one database, handed out one per calling thread and
// opened on demand. `connect` opens a new one; at most `max_idle` returned
// connections are kept (the others are closed). A backend whose Conn has
// `bool broken() const` (MySQL: the server went away) gets broken ones
// closed on return rather than pooled, so that the next call connects anew.
// Thread-safe.
template <typename Conn>
class ConnPool {
 public:
  using Connect = std::function<absl::StatusOr<std::unique_ptr<Conn>>()>;

  explicit ConnPool(Connect connect,
                    size_t max_idle = std::numeric_limits<size_t>::max())
      : connect_(std::move(connect)), max_idle_(max_idle) {}
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  // A connection checked out of the pool; returned when destroyed.
  class Lease {
   public:
    Lease(ConnPool* pool, std::unique_ptr<Conn> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept
        : pool_(other.pool_), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_ != nullptr) pool_->Return(std::move(conn_));
    }
    Conn& operator*() const { return *conn_; }
    Conn* operator->() const { return conn_.get(); }
    // Keeps the connection out of the pool (the caller returns it).
    std::unique_ptr<Conn> Release() { return std::move(conn_); }

   private:
    ConnPool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  // An idle connection, or a new one (the error of `connect` if it fails).
  absl::StatusOr<Lease> Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<Conn> conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
    }
    absl::StatusOr<std::unique_ptr<Conn>> conn = connect_();
    if (!conn.ok()) return conn.status();
    return Lease(this, std::move(*conn));
  }

  // Puts a connection taken with Lease::Release back.
  void Return(std::unique_ptr<Conn> conn) {
    if constexpr (requires(const Conn& c) { c.broken(); }) {
      if (conn->broken()) return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
  }

 private:
  const Connect connect_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;
};

}  // namespace converge::sql

#endif  // CONVERGE_ADAPTERS_SQL_SRC_POOL_H_
