// OutputFile: the file that keeps converged's outputs across restarts
// (`outputs.file`, docs/http-api.md section 6): a SQLite database of its
// own, in WAL mode with synchronous FULL, that holds the last outputs (in
// the replay output format, numbered), the numbering's epoch, the number
// of the last output, and the webhook's cursor.
//
// One process at a time: Open takes the file's write lock and keeps it
// (locking_mode EXCLUSIVE) until the OutputFile is destroyed, so a second
// converged on the same file is refused. A file that holds a converge
// store (converge_instance, ...) is refused too: the store's connections
// would be locked out. So is a file with tables of another program.
//
// Errors: kInvalidArgument for a path that is not a file's (":memory:",
// "file:" URIs); kNotFound for a missing directory; kPermissionDenied for
// a directory or file that is not writable; kFailedPrecondition for a file
// in use, of a newer schema, holding a converge store or another program's
// tables; kDataLoss for a file that is not SQLite or is damaged;
// kUnavailable (with SQLite's message) for other failures to open or write
// (a full disk). Messages name the path. A relative path is relative to
// the working directory.
//
// Thread safety: not safe for concurrent use (OutputLog calls it from its
// flusher thread only, after Open).

#ifndef CONVERGE_TOOLS_CONVERGED_OUTPUT_FILE_H_
#define CONVERGE_TOOLS_CONVERGED_OUTPUT_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace converge::service {

struct StoredOutput {
  int64_t seq = 0;
  int kind = 0;  // OutputKind
  std::string line;
};

class OutputFile {
 public:
  // What the file held when it was opened.
  struct State {
    int64_t epoch = 0;     // set when the file was created (Unix ns)
    int64_t last_seq = 0;  // the number of the last output written
    int64_t webhook_cursor = 0;
    std::vector<StoredOutput> outputs;  // the last `keep`, oldest first
  };

  // Opens or creates the file at `path` and reads its last `keep` outputs.
  // `new_epoch` is the epoch a new file gets.
  static absl::StatusOr<std::unique_ptr<OutputFile>> Open(
      const std::string& path, int64_t keep, int64_t new_epoch, State* state);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // One transaction: appends `outputs` (numbered above every stored one),
  // records `last_seq` and `webhook_cursor`, and deletes the outputs
  // numbered `last_seq - keep` and below. Nothing is written on error.
  absl::Status Write(absl::Span<const StoredOutput> outputs, int64_t last_seq,
                     int64_t webhook_cursor, int64_t keep);

  const std::string& path() const { return path_; }

 private:
  struct Handle;
  OutputFile(std::string path, std::unique_ptr<Handle> h);

  std::string path_;
  std::unique_ptr<Handle> h_;
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_OUTPUT_FILE_H_
