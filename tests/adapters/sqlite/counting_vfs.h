// A SQLite VFS for tests that counts what reaches the file system: syncs
// and writes, by file kind (database, WAL), and can fail reads on demand
// (an I/O error). It wraps the default VFS, passes every other call
// through unchanged, and is made the default while it
// lives, so that a store opened meanwhile runs on it. Every connection
// opened while it lives must be closed before it is destroyed (their
// files point back at it).

#ifndef CONVERGE_TESTS_ADAPTERS_SQLITE_COUNTING_VFS_H_
#define CONVERGE_TESTS_ADAPTERS_SQLITE_COUNTING_VFS_H_

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace converge::testing {

class CountingVfs {
 public:
  std::atomic<int64_t> db_syncs{0};
  std::atomic<int64_t> wal_syncs{0};
  std::atomic<int64_t> wal_writes{0};  // pwrite calls on the WAL file
  std::atomic<int64_t> wal_bytes{0};   // bytes they wrote
  // While > 0, a write of the WAL fails with SQLITE_IOERR_WRITE and counts
  // this down.
  std::atomic<int64_t> fail_wal_writes{0};
  // The database file says it lacks SQLITE_IOCAP_POWERSAFE_OVERWRITE (as a
  // "psow=0" URI parameter makes it): SQLite then pads a synced commit to a
  // sector boundary.
  std::atomic<bool> clear_powersafe_overwrite{false};
  // While fail_wal_writes > 0: WAL writes that succeed (counting this
  // down) before the failures start.
  std::atomic<int64_t> wal_writes_before_failure{0};
  // While > 0, a read of the database or the WAL fails with
  // SQLITE_IOERR_READ and counts this down.
  std::atomic<int64_t> fail_reads{0};

  CountingVfs() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.zName = "converge-counting";
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.pAppData = this;
    vfs_.xOpen = &Open;
    sqlite3_vfs_register(&vfs_, /*makeDflt=*/1);
  }
  ~CountingVfs() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, 1);
  }
  CountingVfs(const CountingVfs&) = delete;
  CountingVfs& operator=(const CountingVfs&) = delete;

 private:
  enum class Kind { kDb, kWal, kOther };
  struct File {
    sqlite3_file base;
    CountingVfs* owner;
    Kind kind;
    sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
  };
  static File* F(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
  static sqlite3_file* R(sqlite3_file* f) { return F(f)->real(); }

  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file,
                  int flags, int* out_flags) {
    auto* self = static_cast<CountingVfs*>(vfs->pAppData);
    File* f = F(file);
    f->owner = self;
    f->kind = (flags & SQLITE_OPEN_MAIN_DB) != 0 ? Kind::kDb
              : (flags & SQLITE_OPEN_WAL) != 0   ? Kind::kWal
                                                 : Kind::kOther;
    f->base.pMethods = nullptr;
    const int rc =
        self->real_->xOpen(self->real_, name, f->real(), flags, out_flags);
    if (const sqlite3_io_methods* m = f->real()->pMethods; m != nullptr) {
      // The version of the real file's methods, so that SQLite calls no
      // xShm or xFetch method it does not have.
      f->base.pMethods = &kMethods[std::clamp(m->iVersion, 1, 3) - 1];
    }
    return rc;
  }

  static int Close(sqlite3_file* f) { return R(f)->pMethods->xClose(R(f)); }
  static int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
    if (F(f)->kind != Kind::kOther && F(f)->owner->fail_reads.load() > 0) {
      --F(f)->owner->fail_reads;
      return SQLITE_IOERR_READ;
    }
    return R(f)->pMethods->xRead(R(f), p, n, off);
  }
  static int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
    if (F(f)->kind == Kind::kWal) {
      CountingVfs* o = F(f)->owner;
      if (o->fail_wal_writes.load() > 0) {
        if (o->wal_writes_before_failure.load() > 0) {
          --o->wal_writes_before_failure;
        } else {
          --o->fail_wal_writes;
          return SQLITE_IOERR_WRITE;
        }
      }
      ++F(f)->owner->wal_writes;
      F(f)->owner->wal_bytes += n;
    }
    return R(f)->pMethods->xWrite(R(f), p, n, off);
  }
  static int Truncate(sqlite3_file* f, sqlite3_int64 size) {
    return R(f)->pMethods->xTruncate(R(f), size);
  }
  static int Sync(sqlite3_file* f, int flags) {
    if (F(f)->kind == Kind::kDb) ++F(f)->owner->db_syncs;
    if (F(f)->kind == Kind::kWal) ++F(f)->owner->wal_syncs;
    return R(f)->pMethods->xSync(R(f), flags);
  }
  static int FileSize(sqlite3_file* f, sqlite3_int64* size) {
    return R(f)->pMethods->xFileSize(R(f), size);
  }
  static int Lock(sqlite3_file* f, int level) {
    return R(f)->pMethods->xLock(R(f), level);
  }
  static int Unlock(sqlite3_file* f, int level) {
    return R(f)->pMethods->xUnlock(R(f), level);
  }
  static int CheckReservedLock(sqlite3_file* f, int* out) {
    return R(f)->pMethods->xCheckReservedLock(R(f), out);
  }
  static int FileControl(sqlite3_file* f, int op, void* arg) {
    return R(f)->pMethods->xFileControl(R(f), op, arg);
  }
  static int SectorSize(sqlite3_file* f) {
    return R(f)->pMethods->xSectorSize(R(f));
  }
  static int DeviceCharacteristics(sqlite3_file* f) {
    const int c = R(f)->pMethods->xDeviceCharacteristics(R(f));
    return F(f)->kind == Kind::kDb &&
                   F(f)->owner->clear_powersafe_overwrite.load()
               ? c & ~SQLITE_IOCAP_POWERSAFE_OVERWRITE
               : c;
  }
  static int ShmMap(sqlite3_file* f, int region, int size, int extend,
                    void volatile** out) {
    return R(f)->pMethods->xShmMap(R(f), region, size, extend, out);
  }
  static int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
    return R(f)->pMethods->xShmLock(R(f), offset, n, flags);
  }
  static void ShmBarrier(sqlite3_file* f) { R(f)->pMethods->xShmBarrier(R(f)); }
  static int ShmUnmap(sqlite3_file* f, int delete_flag) {
    return R(f)->pMethods->xShmUnmap(R(f), delete_flag);
  }
  static int Fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
    return R(f)->pMethods->xFetch(R(f), off, n, out);
  }
  static int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
    return R(f)->pMethods->xUnfetch(R(f), off, p);
  }

#define CONVERGE_COUNTING_METHODS(version)                                 \
  {                                                                        \
    version, &Close, &Read, &Write, &Truncate, &Sync, &FileSize, &Lock,    \
        &Unlock, &CheckReservedLock, &FileControl, &SectorSize,            \
        &DeviceCharacteristics, &ShmMap, &ShmLock, &ShmBarrier, &ShmUnmap, \
        &Fetch, &Unfetch                                                   \
  }
  // One table per version of sqlite3_io_methods (WAL needs the xShm
  // methods of version 2, memory-mapped reads xFetch/xUnfetch of 3).
  static constexpr sqlite3_io_methods kMethods[3] = {
      CONVERGE_COUNTING_METHODS(1), CONVERGE_COUNTING_METHODS(2),
      CONVERGE_COUNTING_METHODS(3)};
#undef CONVERGE_COUNTING_METHODS

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_ADAPTERS_SQLITE_COUNTING_VFS_H_
