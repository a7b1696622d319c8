# Runs a command and checks its exit status and output.
#
#   cmake -DCOMMAND=<program;arg;...> [-DSTDIN=<file>] [-DEXPECT_RC=<n>]
#         [-DSTDOUT_MATCHES=<regex;...>] [-DSTDERR_MATCHES=<regex;...>]
#         [-DSTDOUT_NOT_MATCHES=<regex;...>]
#         [-DSTDOUT_COUNTS=<n:regex;...>] -P CheckCommand.cmake
#
# EXPECT_RC defaults to 0. Each regex of *_MATCHES must match the output;
# each of STDOUT_NOT_MATCHES must not; STDOUT_COUNTS "n:regex" asks for
# exactly n non-overlapping matches. Regexes are CMake regexes and cannot
# contain ';' (write '.' for a quote, which is hard to pass through CTest).
if(NOT DEFINED COMMAND)
  message(FATAL_ERROR "CheckCommand.cmake: -DCOMMAND=... is required")
endif()
if(NOT DEFINED EXPECT_RC)
  set(EXPECT_RC 0)
endif()
set(stdin_args)
if(DEFINED STDIN)
  set(stdin_args INPUT_FILE "${STDIN}")
endif()
execute_process(COMMAND ${COMMAND} ${stdin_args}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
set(report "command: ${COMMAND}\nexit status: ${rc}\n--- stdout\n${out}--- stderr\n${err}")

set(problems)
if(NOT rc STREQUAL EXPECT_RC)
  list(APPEND problems "expected exit status ${EXPECT_RC}, got ${rc}")
endif()
foreach(re IN LISTS STDOUT_MATCHES)
  if(NOT out MATCHES "${re}")
    list(APPEND problems "stdout does not match: ${re}")
  endif()
endforeach()
foreach(re IN LISTS STDERR_MATCHES)
  if(NOT err MATCHES "${re}")
    list(APPEND problems "stderr does not match: ${re}")
  endif()
endforeach()
foreach(re IN LISTS STDOUT_NOT_MATCHES)
  if(out MATCHES "${re}")
    list(APPEND problems "stdout matches, but must not: ${re}")
  endif()
endforeach()
foreach(spec IN LISTS STDOUT_COUNTS)
  string(FIND "${spec}" ":" colon)
  string(SUBSTRING "${spec}" 0 ${colon} want)
  math(EXPR start "${colon} + 1")
  string(SUBSTRING "${spec}" ${start} -1 re)
  string(REGEX MATCHALL "${re}" found "${out}")
  list(LENGTH found got)
  if(NOT got EQUAL want)
    list(APPEND problems "stdout has ${got} matches of ${re}, expected ${want}")
  endif()
endforeach()

if(problems)
  list(JOIN problems "\n  " text)
  message(FATAL_ERROR "check failed:\n  ${text}\n${report}")
endif()
message(STATUS "ok: ${COMMAND}")
