// `converge test CASES.json`: rule unit tests in the manner of
// `promtool test rules` (docs/cli.md, "converge test").
//
// A case replays its input events on a fresh memory store and compares the
// output with its expected lines: the output, filtered to the line types
// that appear in `expect`, must have exactly as many lines as `expect`, and
// each expected line's fields must equal those of the output line at the
// same position (fields left out are not compared).
//
// Thread safety: runs on the calling thread.

#ifndef CONVERGE_TOOLS_CONVERGE_RULE_TEST_H_
#define CONVERGE_TOOLS_CONVERGE_RULE_TEST_H_

#include <string>

namespace converge::cli {

// Exit statuses of RunRuleTests.
inline constexpr int kTestsPassed = 0;
inline constexpr int kTestsFailed = 1;
inline constexpr int kTestsMalformed = 2;

// Runs every case of the file at `path`, printing "PASS <name>" or
// "FAIL <name>" with a diff to stdout, and errors in the file to stderr
// (naming the line and the field). Returns kTestsPassed, kTestsFailed, or
// kTestsMalformed when the file cannot be read or is not a valid case file
// (then no case result is printed).
int RunRuleTests(const std::string& path);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_RULE_TEST_H_
