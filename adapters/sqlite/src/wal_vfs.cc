#include "wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace converge::sqlite::internal {
namespace {

constexpr char kName[] = "converge-wal";
// A WAL frame header: page number, then the database size in pages after
// the commit (zero unless the frame commits), then salts and checksums.
constexpr int kFrameHeader = 24;
// The WAL file's own header; frames follow it.
constexpr sqlite3_int64 kWalHeader = 32;
// Pending bytes past which a long transaction's frames are written.
constexpr size_t kMaxPending = 256 * 1024;
// The most bytes given to one xWrite of the default VFS: its unix write
// takes a 17-bit length (a 128 KiB write would write nothing).
constexpr size_t kMaxWrite = 64 * 1024;

// The VFS a shim wraps: its pAppData.
sqlite3_vfs* RealOf(sqlite3_vfs* shim) {
  return static_cast<sqlite3_vfs*>(shim->pAppData);
}

struct File {
  sqlite3_file base;   // pMethods: kMethods, or nullptr after a failed open
  sqlite3_file* real;  // the wrapped VFS's file, allocated after this one
  bool coalesce;       // a write-ahead log whose writes are coalesced
  // A database file's log, and a log's database file (while both are
  // open): the database file's wal-index calls flush its log.
  File* peer;
  // Where the page of the last commit frame header goes (-1: none): the
  // pending bytes are written once it is.
  sqlite3_int64 commit_page_at;
  sqlite3_int64 offset;       // file offset of pending[0]
  std::vector<char> pending;  // contiguous bytes not yet written
};

constexpr size_t RealOffset() {
  return (sizeof(File) + alignof(std::max_align_t) - 1) /
         alignof(std::max_align_t) * alignof(std::max_align_t);
}

File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }

int Flush(File* f) {
  int rc = SQLITE_OK;
  for (size_t done = 0; done < f->pending.size() && rc == SQLITE_OK;) {
    const size_t n = std::min(f->pending.size() - done, kMaxWrite);
    rc = f->real->pMethods->xWrite(
        f->real, f->pending.data() + done, static_cast<int>(n),
        f->offset + static_cast<sqlite3_int64>(done));
    done += n;
  }
  f->pending.clear();
  return rc;
}

// Called on a database file before its wal-index publishes a commit and
// around every lock call: its log's pending bytes are written. Every
// commit has been written before (with its error returned) by then, so
// what is left can only be frames of a transaction that rolled back, past
// the end of the log, and they go out while this connection still holds
// the lock that keeps other writers off those offsets; an error writing
// them loses nothing (recovery stops at the last commit anyway).
void FlushLog(File* db) {
  if (db->peer != nullptr && db->peer->coalesce) (void)Flush(db->peer);
}

int Close(sqlite3_file* file) {
  File* f = Of(file);
  const int flushed = Flush(f);
  if (f->peer != nullptr) f->peer->peer = nullptr;
  const int rc = f->real->pMethods->xClose(f->real);
  f->~File();
  return flushed != SQLITE_OK ? flushed : rc;
}

int Read(sqlite3_file* file, void* buf, int amt, sqlite3_int64 off) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xRead(f->real, buf, amt, off);
}

int Write(sqlite3_file* file, const void* buf, int amt, sqlite3_int64 off) {
  File* f = Of(file);
  if (!f->coalesce) return f->real->pMethods->xWrite(f->real, buf, amt, off);
  const char* bytes = static_cast<const char*>(buf);
  static constexpr char kNoCommit[4] = {0, 0, 0, 0};
  const bool commit_header = amt == kFrameHeader && off >= kWalHeader &&
                             std::memcmp(bytes + 4, kNoCommit, 4) != 0;
  const bool commit_page = off == f->commit_page_at;
  f->commit_page_at = commit_header ? off + amt : -1;
  if (commit_header && f->pending.empty()) {
    // A commit frame's header with nothing before it: the commit's only
    // frame, or the header alone, rewritten with new checksums after the
    // transaction rewrote a page in place (walRewriteChecksums), and then
    // nothing else is written before the commit shows. Written at once.
    return f->real->pMethods->xWrite(f->real, buf, amt, off);
  }
  if (!f->pending.empty() &&
      off != f->offset + static_cast<sqlite3_int64>(f->pending.size())) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (f->pending.empty()) f->offset = off;
  try {
    f->pending.insert(f->pending.end(), bytes, bytes + amt);
  } catch (const std::bad_alloc&) {
    return SQLITE_IOERR_NOMEM;
  }
  if (commit_page || f->pending.size() >= kMaxPending) return Flush(f);
  return SQLITE_OK;
}

// Every other call sees the file as written.
int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xTruncate(f->real, size);
}

int Sync(sqlite3_file* file, int flags) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xSync(f->real, flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileSize(f->real, size);
}

int Lock(sqlite3_file* file, int level) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  FlushLog(f);
  return f->real->pMethods->xLock(f->real, level);
}

int Unlock(sqlite3_file* file, int level) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  // Leaving exclusive locking mode: SQLite skipped the wal-index unlocks
  // while it held the database file exclusively.
  FlushLog(f);
  return f->real->pMethods->xUnlock(f->real, level);
}

int CheckReservedLock(sqlite3_file* file, int* out) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xCheckReservedLock(f->real, out);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}

int SectorSize(sqlite3_file* file) {
  File* f = Of(file);
  return f->real->pMethods->xSectorSize(f->real);
}

int DeviceCharacteristics(sqlite3_file* file) {
  File* f = Of(file);
  return f->real->pMethods->xDeviceCharacteristics(f->real);
}

int ShmMap(sqlite3_file* file, int page, int size, int extend,
           void volatile** out) {
  File* f = Of(file);
  return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  File* f = Of(file);
  // Frames of a transaction that rolled back may be pending: written while
  // this connection still holds the log's write lock, they land past the
  // log's end, where SQLite itself left them; written later, they could
  // land on frames another writer has committed since. Before a lock too:
  // leaving exclusive locking mode takes a read lock first.
  FlushLog(f);
  return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

void ShmBarrier(sqlite3_file* file) {
  File* f = Of(file);
  // SQLite writes the wal-index header's second copy, calls this, then
  // the first: a reader trusts the header only once both agree, so
  // whatever is still pending (nothing, in every path Write knows) is in
  // the log before any reader can see the commit.
  FlushLog(f);
  f->real->pMethods->xShmBarrier(f->real);
}

int ShmUnmap(sqlite3_file* file, int delete_flag) {
  File* f = Of(file);
  return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

int Fetch(sqlite3_file* file, sqlite3_int64 off, int amt, void** out) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFetch(f->real, off, amt, out);
}

int Unfetch(sqlite3_file* file, sqlite3_int64 off, void* p) {
  File* f = Of(file);
  return f->real->pMethods->xUnfetch(f->real, off, p);
}

// One table per version of the real file's methods: a method the real file
// lacks is not offered either.
sqlite3_io_methods MethodsFor(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = Close;
  m.xRead = Read;
  m.xWrite = Write;
  m.xTruncate = Truncate;
  m.xSync = Sync;
  m.xFileSize = FileSize;
  m.xLock = Lock;
  m.xUnlock = Unlock;
  m.xCheckReservedLock = CheckReservedLock;
  m.xFileControl = FileControl;
  m.xSectorSize = SectorSize;
  m.xDeviceCharacteristics = DeviceCharacteristics;
  if (version >= 2) {
    m.xShmMap = ShmMap;
    m.xShmLock = ShmLock;
    m.xShmBarrier = ShmBarrier;
    m.xShmUnmap = ShmUnmap;
  }
  if (version >= 3) {
    m.xFetch = Fetch;
    m.xUnfetch = Unfetch;
  }
  return m;
}

const sqlite3_io_methods kMethods[3] = {MethodsFor(1), MethodsFor(2),
                                        MethodsFor(3)};

bool IsOurs(sqlite3_file* file) {
  return file->pMethods == &kMethods[0] || file->pMethods == &kMethods[1] ||
         file->pMethods == &kMethods[2];
}

int Open(sqlite3_vfs* shim, sqlite3_filename name, sqlite3_file* file,
         int flags, int* out_flags) {
  sqlite3_vfs* const real_vfs = RealOf(shim);
  File* f = new (file) File();
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) +
                                            RealOffset());
  f->coalesce = false;
  f->peer = nullptr;
  f->commit_page_at = -1;
  f->offset = 0;
  const int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  const sqlite3_io_methods* real = f->real->pMethods;
  if (real == nullptr) {
    // Nothing to close: SQLite will not call xClose either.
    f->~File();
    return rc;
  }
  const int version = real->iVersion < 1   ? 1
                      : real->iVersion > 3 ? 3
                                           : real->iVersion;
  f->base.pMethods = &kMethods[version - 1];
  if ((flags & SQLITE_OPEN_WAL) != 0 && name != nullptr && version >= 2) {
    // Coalesced only with its database file at hand (whose wal-index and
    // lock calls flush it), and when neither file may tear a sector:
    // SQLite decides from the database file's characteristics (which a
    // "psow=0" URI parameter can clear) whether to pad a synced commit
    // with frames split around a sync.
    sqlite3_file* db = sqlite3_database_file_object(name);
    auto powersafe = [](sqlite3_file* file) {
      return (file->pMethods->xDeviceCharacteristics(file) &
              SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
    };
    if (db != nullptr && IsOurs(db) && Of(db)->peer == nullptr &&
        powersafe(f->real) && powersafe(Of(db)->real)) {
      f->peer = Of(db);
      Of(db)->peer = f;
      f->coalesce = true;
    }
  }
  return rc;
}

// The VFS-level calls take the real VFS's own pointer (the default VFS
// keeps its state in pAppData).
int Delete(sqlite3_vfs* shim, const char* name, int sync_dir) {
  return RealOf(shim)->xDelete(RealOf(shim), name, sync_dir);
}
int Access(sqlite3_vfs* shim, const char* name, int flags, int* out) {
  return RealOf(shim)->xAccess(RealOf(shim), name, flags, out);
}
int FullPathname(sqlite3_vfs* shim, const char* name, int n, char* out) {
  return RealOf(shim)->xFullPathname(RealOf(shim), name, n, out);
}
void* DlOpen(sqlite3_vfs* shim, const char* name) {
  return RealOf(shim)->xDlOpen(RealOf(shim), name);
}
void DlError(sqlite3_vfs* shim, int n, char* out) {
  RealOf(shim)->xDlError(RealOf(shim), n, out);
}
void (*DlSym(sqlite3_vfs* shim, void* handle, const char* sym))(void) {
  return RealOf(shim)->xDlSym(RealOf(shim), handle, sym);
}
void DlClose(sqlite3_vfs* shim, void* handle) {
  RealOf(shim)->xDlClose(RealOf(shim), handle);
}
int Randomness(sqlite3_vfs* shim, int n, char* out) {
  return RealOf(shim)->xRandomness(RealOf(shim), n, out);
}
int Sleep(sqlite3_vfs* shim, int micros) {
  return RealOf(shim)->xSleep(RealOf(shim), micros);
}
int CurrentTime(sqlite3_vfs* shim, double* out) {
  return RealOf(shim)->xCurrentTime(RealOf(shim), out);
}
int GetLastError(sqlite3_vfs* shim, int n, char* out) {
  return RealOf(shim)->xGetLastError(RealOf(shim), n, out);
}
int CurrentTimeInt64(sqlite3_vfs* shim, sqlite3_int64* out) {
  return RealOf(shim)->xCurrentTimeInt64(RealOf(shim), out);
}

// Registers a shim over `real`, named after it (its name and address: two
// copies of this library in one process, each with its own shim, must not
// find each other's); nullptr if SQLite refuses.
sqlite3_vfs* Register(sqlite3_vfs* real) {
  auto* v = new sqlite3_vfs{};  // registered for the life of the process
  char address[32];
  std::snprintf(address, sizeof(address), "%p", static_cast<void*>(real));
  auto* name = new std::string(
      std::string(kName) + "-" + (real->zName != nullptr ? real->zName : "") +
      "-" + address + "-" + std::to_string(reinterpret_cast<uintptr_t>(v)));
  // Version 2 at most: the system-call overrides of version 3 are for
  // tests of SQLite itself.
  v->iVersion = real->iVersion < 2 ? real->iVersion : 2;
  v->szOsFile = static_cast<int>(RealOffset()) + real->szOsFile;
  v->mxPathname = real->mxPathname;
  v->zName = name->c_str();
  v->pAppData = real;
  v->xOpen = Open;
  v->xDelete = Delete;
  v->xAccess = Access;
  v->xFullPathname = FullPathname;
  v->xDlOpen = DlOpen;
  v->xDlError = DlError;
  v->xDlSym = DlSym;
  v->xDlClose = DlClose;
  v->xRandomness = Randomness;
  v->xSleep = Sleep;
  v->xCurrentTime = CurrentTime;
  v->xGetLastError = GetLastError;
  if (v->iVersion >= 2) v->xCurrentTimeInt64 = CurrentTimeInt64;
  if (sqlite3_vfs_register(v, 0) != SQLITE_OK) {
    delete name;
    delete v;
    return nullptr;
  }
  return v;
}

}  // namespace

const char* WalVfsName() {
  // One shim per VFS that has been the default (a test may make its own
  // the default for a while), kept for the life of the process.
  static std::mutex mu;
  static std::vector<std::pair<sqlite3_vfs*, sqlite3_vfs*>> shims;
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [wrapped, shim] : shims) {
    // The same VFS: a test's VFS may have gone and another come at its
    // address, with a file of another size or fewer methods.
    if (wrapped == real &&
        shim->szOsFile == static_cast<int>(RealOffset()) + real->szOsFile &&
        shim->iVersion == (real->iVersion < 2 ? real->iVersion : 2) &&
        sqlite3_vfs_find(shim->zName) == shim) {
      return shim->zName;
    }
  }
  sqlite3_vfs* shim = Register(real);
  if (shim == nullptr) return nullptr;
  shims.emplace_back(real, shim);
  return shim->zName;
}

}  // namespace converge::sqlite::internal
