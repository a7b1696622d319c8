// Internal: a VFS over SQLite's default one that writes a transaction's
// write-ahead-log frames with one system call.
//
// SQLite writes each WAL frame as two writes, its 24-byte header and then
// the page, so a commit of five pages costs ten pwrite calls, and each call
// costs the kernel a look-up, lock and dirty-marking of every page-cache
// page it touches (a frame is 4,120 bytes: most touch two). This VFS keeps
// a WAL file's contiguous writes in memory and writes them with one
// pwrite when the frame that commits the transaction is complete (its
// header says so: the database size after the commit is not zero), before
// any other call on the file, before a write elsewhere in it, and when
// 256 KiB are pending. So a commit's frames are all in the file, with any
// error returned, before the xWrite that completes them returns, which is
// before SQLite publishes the new end of the log to readers (its
// wal-index header): readers in this process and others see what they saw
// without this VFS. The main database file, the journal and the
// wal-index are not touched; a process crash before the flush loses only
// frames of a transaction that had not committed.
//
// Not installed.

#ifndef CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_
#define CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_

namespace converge::sqlite::internal {

// Registers the VFS (once, not as the default) and returns its name for
// sqlite3_open_v2; nullptr if SQLite has no default VFS to wrap.
const char* WalVfsName();

}  // namespace converge::sqlite::internal

#endif  // CONVERGE_ADAPTERS_SQLITE_SRC_WAL_VFS_H_
