// Internal: a VFS over SQLite's default one that writes a transaction's
// write-ahead-log frames with one system call.
//
// SQLite writes each WAL frame as two writes, its 24-byte header and then
// the page, so a commit of five pages costs ten pwrite calls, and each call
// costs the kernel a look-up, lock and dirty-marking of every page-cache
// page it touches (a frame is 4,120 bytes: most touch two). This VFS keeps
// a log's contiguous writes in memory and writes them with one call (in
// pieces of 64 KiB at most):
//
//   - when the page of the frame that commits the transaction arrives (the
//     frame's header says so: the database size after the commit is not
//     zero), so that the commit's frames are in the file, with any error
//     returned, before the xWrite that completes them returns;
//   - before any other call that reads or changes the log (read, sync,
//     size, truncate, lock, file control, fetch, close), before a write
//     elsewhere in it, and when
//     256 KiB are pending;
//   - in the database file's xShmBarrier, which SQLite calls between the
//     two copies of the wal-index header it writes to publish a commit (a
//     reader trusts the header only when both agree): a backstop, since
//     every commit path SQLite 3.40 has is flushed before it;
//   - in every lock call of the database file (xShmLock, xLock, xUnlock):
//     frames of a transaction that rolled back go out while this
//     connection still holds the lock that keeps other writers off those
//     offsets (the log's write lock, or in exclusive locking mode the
//     database file's exclusive lock, which SQLite releases without a
//     wal-index unlock), past the end of the log, where SQLite itself
//     would have left them, never later over frames another writer
//     committed.
//
// A commit frame's header that arrives with nothing pending (the commit's
// only frame, or the header SQLite rewrites alone, with new checksums,
// after a transaction rewrote a page in place) is written at once. A log
// is coalesced only when its database file was opened through this VFS
// too, and when both files report SQLITE_IOCAP_POWERSAFE_OVERWRITE
// (SQLite reads it from the database file, where a "psow=0" URI parameter
// clears it; without it SQLite pads a synced commit with frames split
// around a sync).
//
// So readers in this process and others, which read the log through their
// own file handles, see what they would see without this VFS, and a
// process crash loses only frames of a transaction that had not committed.
// The database file, the wal-index and other files are passed through.
//
// Not installed.

#ifndef CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_
#define CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_

namespace converge::sqlite::internal {

// Registers (once per default VFS, not as the default) a VFS over the
// current default VFS and returns its name for sqlite3_open_v2; nullptr if
// SQLite has no default VFS or refuses the registration.
const char* WalVfsName();

}  // namespace converge::sqlite::internal

#endif  // CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_
