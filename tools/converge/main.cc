// The converge command line (docs/cli.md):
//
//   converge replay [--store URI] [--profile plain|bkmonitor] [--workers N]
//                   IN.jsonl
//   converge test CASES.json
//   converge inspect [--store URI]
//   converge end [--store URI] ID
//
// Without --store: $CONVERGE_STORE, else sqlite:converge.db (store_uri.h).
//
// Exit statuses: 0 success; 1 failure (a bad input line, a failing test, an
// unknown instance, a store error); 2 a usage error (unknown flag, missing
// argument), and for `converge test` a malformed case file.

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "admin.h"
#include "replay.h"
#include "rule_test.h"
#include "store_uri.h"

namespace converge::cli {
namespace {

constexpr int kUsageError = 2;

constexpr std::string_view kMainHelp =
    R"(usage: converge <command> [flags] [arguments]

Commands:
  replay    replay events (JSON lines) on a virtual clock; print decisions,
            instance events and summaries as JSON lines
  test      run rule unit tests from a JSON case file
  inspect   show a store's open instances, task queue and dead letters
  end       end a converge instance

Run "converge <command> --help" for a command's flags.
Formats: docs/replay-format.md; commands: docs/cli.md.
)";

constexpr std::string_view kReplayHelp =
    R"(usage: converge replay [--store URI] [--repo URI]
                       [--profile plain|bkmonitor] [--workers N] IN.jsonl

Reads events from IN.jsonl ("-" for stdin), one JSON object a line, and
writes what the converge manager does, one JSON object a line, to stdout.
Time is virtual: it follows the events' "time" fields.

Flags:
  --store URI        where the state lives (default: $CONVERGE_STORE if set,
                     else @DEFAULT_STORE@; sqlite:PATH keeps the state in
                     file PATH, memory: in a fresh store gone at exit,
                     redis://HOST:PORT/DB leases, windows and queues on
                     Redis (with --repo))
  --repo URI         where instances and relations live, when not in the
                     store (default: $CONVERGE_REPO if set); needed with
                     redis://, for example sqlite:converge.db
  --profile NAME     plain (default): configs as given; bkmonitor: upstream's
                     forced notice and second-level defaults, minute windows
  --workers N        threads running the tasks due at one instant (default 1;
                     more than 1 makes the order of output lines of one
                     instant nondeterministic)
  -h, --help         this text

A bad line stops the replay: stderr names the line and the field, nothing
after it is applied, and the exit status is 1.

On a store that keeps state, an action decided by an earlier run gets its
stored decision again (stderr says how many did), and converge ids go on
from the earlier runs'.
)";

constexpr std::string_view kTestHelp =
    R"(usage: converge test CASES.json

Runs rule unit tests. Each case replays its input events on a fresh memory
store and compares the output lines of the types its "expect" list names
with that list: same number of lines, and each expected field equal.

Prints "PASS <name>" or "FAIL <name>" with a diff for each case.
Exit status: 0 all passed, 1 some failed, 2 the file is malformed (stderr
names the line and the field).
)";

constexpr std::string_view kInspectHelp =
    R"(usage: converge inspect [--store URI] [--repo URI]

Prints the open instances (id, type, function, dimension, creation time,
visibility), the lengths of the task queue (pending, in flight, dead) and the
dead letters with their last error.

Flags:
  --store URI   the store (default: $CONVERGE_STORE if set, else
                @DEFAULT_STORE@); a store file must exist
  --repo URI    where instances and relations live, when not in the store
                (default: $CONVERGE_REPO if set; needed with redis://)
  -h, --help    this text
)";

constexpr std::string_view kEndHelp =
    R"(usage: converge end [--store URI] [--repo URI] ID

Ends converge instance ID now (a second-level instance ends the first-level
instances linked to it) and says whether it was open. Exit status 1 if the
instance is unknown.

Flags:
  --store URI   the store (default: $CONVERGE_STORE if set, else
                @DEFAULT_STORE@); a store file must exist
  --repo URI    where instances and relations live, when not in the store
                (default: $CONVERGE_REPO if set; needed with redis://)
  -h, --help    this text
)";

// A command's help text, with the built-in default store filled in.
std::string Help(std::string_view text) {
  constexpr std::string_view kPlaceholder = "@DEFAULT_STORE@";
  std::string out(text);
  if (const size_t at = out.find(kPlaceholder); at != std::string::npos) {
    out.replace(at, kPlaceholder.size(), tools::kDefaultStoreUri);
  }
  return out;
}

// A usage error: the message, then a pointer to --help.
int Usage(std::string_view command, std::string_view message) {
  std::cerr << "converge " << command << ": " << message << "\n"
            << "run \"converge " << command << " --help\" for usage\n";
  return kUsageError;
}

// Flags of one command: "--name value" or "--name=value". Everything not a
// flag is a positional argument; "-" alone is positional (stdin), and
// "--" ends the flags.
struct ParsedArgs {
  bool help = false;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> positional;
};

std::optional<ParsedArgs> ParseArgs(std::string_view command,
                                    const std::vector<std::string>& args,
                                    const std::vector<std::string>& known,
                                    int* status) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || arg.empty() || arg[0] != '-') {
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      parsed.help = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    bool is_known = false;
    for (const std::string& k : known) is_known = is_known || k == name;
    if (!is_known) {
      *status = Usage(command, "unknown flag " + name);
      return std::nullopt;
    }
    if (!value.has_value()) {
      if (i + 1 >= args.size()) {
        *status = Usage(command, "flag " + name + " needs a value");
        return std::nullopt;
      }
      value = args[++i];
    }
    parsed.flags.emplace_back(name, *value);
  }
  return parsed;
}

int Replay(const std::vector<std::string>& args) {
  int status = 0;
  std::optional<ParsedArgs> parsed = ParseArgs(
      "replay", args, {"--store", "--repo", "--profile", "--workers"}, &status);
  if (!parsed.has_value()) return status;
  if (parsed->help) {
    std::cout << Help(kReplayHelp);
    return 0;
  }
  ReplayOptions options;
  options.store_uri = tools::DefaultStoreUri();
  options.repo_uri = tools::DefaultRepoUri();
  for (const auto& [name, value] : parsed->flags) {
    if (name == "--store") {
      options.store_uri = value;
    } else if (name == "--repo") {
      options.repo_uri = value;
    } else if (name == "--profile") {
      if (value == "plain") {
        options.profile = Profile::kPlain;
      } else if (value == "bkmonitor") {
        options.profile = Profile::kBkmonitor;
      } else {
        return Usage(
            "replay",
            "--profile: expected plain or bkmonitor, got \"" + value + "\"");
      }
    } else if (name == "--workers") {
      int workers = 0;
      if (!absl::SimpleAtoi(value, &workers) || workers < 1 || workers > 256) {
        return Usage("replay",
                     "--workers: expected an integer from 1 to 256, "
                     "got \"" +
                         value + "\"");
      }
      options.workers = workers;
    }
  }
  if (parsed->positional.size() != 1) {
    return Usage("replay", parsed->positional.empty()
                               ? "missing the input file (IN.jsonl, or - for "
                                 "stdin)"
                               : "expected one input file");
  }
  return RunReplay(options, parsed->positional[0]);
}

int Test(const std::vector<std::string>& args) {
  int status = 0;
  std::optional<ParsedArgs> parsed = ParseArgs("test", args, {}, &status);
  if (!parsed.has_value()) return status;
  if (parsed->help) {
    std::cout << kTestHelp;
    return 0;
  }
  if (parsed->positional.size() != 1) {
    return Usage("test", parsed->positional.empty() ? "missing CASES.json"
                                                    : "expected one case file");
  }
  return RunRuleTests(parsed->positional[0]);
}

int Inspect(const std::vector<std::string>& args) {
  int status = 0;
  std::optional<ParsedArgs> parsed =
      ParseArgs("inspect", args, {"--store", "--repo"}, &status);
  if (!parsed.has_value()) return status;
  if (parsed->help) {
    std::cout << Help(kInspectHelp);
    return 0;
  }
  StoreFlags store = DefaultStoreFlags();
  for (const auto& [name, value] : parsed->flags) {
    (name == "--store" ? store.store_uri : store.repo_uri) = value;
  }
  if (!parsed->positional.empty()) {
    return Usage("inspect",
                 "unexpected argument \"" + parsed->positional[0] + "\"");
  }
  return RunInspect(store);
}

int End(const std::vector<std::string>& args) {
  int status = 0;
  std::optional<ParsedArgs> parsed =
      ParseArgs("end", args, {"--store", "--repo"}, &status);
  if (!parsed.has_value()) return status;
  if (parsed->help) {
    std::cout << Help(kEndHelp);
    return 0;
  }
  StoreFlags store = DefaultStoreFlags();
  for (const auto& [name, value] : parsed->flags) {
    (name == "--store" ? store.store_uri : store.repo_uri) = value;
  }
  if (parsed->positional.size() != 1) {
    return Usage("end", parsed->positional.empty()
                            ? "missing the instance ID"
                            : "expected one instance ID");
  }
  int64_t id = 0;
  if (!absl::SimpleAtoi(parsed->positional[0], &id) || id <= 0) {
    return Usage("end", "ID: expected a positive integer, got \"" +
                            parsed->positional[0] + "\"");
  }
  return RunEnd(store, id);
}

}  // namespace
}  // namespace converge::cli

int main(int argc, char** argv) {
  using namespace converge::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kMainHelp;
    return kUsageError;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kMainHelp;
    return 0;
  }
  if (command == "replay") return Replay(args);
  if (command == "test") return Test(args);
  if (command == "inspect") return Inspect(args);
  if (command == "end") return End(args);
  std::cerr << "converge: unknown command \"" << command << "\"\n" << kMainHelp;
  return kUsageError;
}
