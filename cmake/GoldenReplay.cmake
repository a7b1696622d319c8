# Runs `converge replay` on a golden input and compares its output with the
# expected output byte for byte; on a mismatch, fails with a unified diff.
#
#   cmake -DCONVERGE=<converge executable> -DINPUT=<name.in.jsonl>
#         -DEXPECTED=<name.out.jsonl> -DACTUAL=<file to write>
#         [-DARGS=<flags, ;-separated>] [-DSQLITE_DB=<file>]
#         [-DREDIS_URI_FILE=<file holding a redis:// URI>]
#         -P GoldenReplay.cmake
# With SQLITE_DB the replay runs on a fresh SQLite store in that file,
# without it on a fresh memory store (never on the command's default store,
# a file in the working directory that would keep state between tests).
# With REDIS_URI_FILE as well, leases, windows and queues live on that Redis
# server, under a key prefix of their own (the name of SQLITE_DB and this
# process's id), and the SQLite file holds the instances (--repo).
foreach(var CONVERGE INPUT EXPECTED ACTUAL)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "GoldenReplay.cmake: -D${var}=... is required")
  endif()
endforeach()

if(DEFINED REDIS_URI_FILE)
  if(NOT DEFINED SQLITE_DB)
    message(FATAL_ERROR "GoldenReplay.cmake: REDIS_URI_FILE needs SQLITE_DB")
  endif()
  file(READ "${REDIS_URI_FILE}" redis_uri)
  string(STRIP "${redis_uri}" redis_uri)
  get_filename_component(prefix "${SQLITE_DB}" NAME_WE)
  string(RANDOM LENGTH 8 nonce)
  file(REMOVE "${SQLITE_DB}" "${SQLITE_DB}-wal" "${SQLITE_DB}-shm")
  list(PREPEND ARGS --store "${redis_uri}?key_prefix=golden.${prefix}.${nonce}."
       --repo "sqlite:${SQLITE_DB}")
elseif(DEFINED SQLITE_DB)
  file(REMOVE "${SQLITE_DB}" "${SQLITE_DB}-wal" "${SQLITE_DB}-shm")
  list(PREPEND ARGS --store "sqlite:${SQLITE_DB}")
else()
  list(PREPEND ARGS --store memory:)
endif()

execute_process(
  COMMAND "${CONVERGE}" replay ${ARGS} "${INPUT}"
  OUTPUT_FILE "${ACTUAL}"
  ERROR_VARIABLE err
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "converge replay ${ARGS} ${INPUT} exited with ${rc}:\n${err}")
endif()

execute_process(
  COMMAND "${CMAKE_COMMAND}" -E compare_files "${EXPECTED}" "${ACTUAL}"
  RESULT_VARIABLE differ)
if(differ)
  # The diff goes to stdout as is (message() would rewrap it).
  find_program(DIFF_PROGRAM diff)
  if(DIFF_PROGRAM)
    execute_process(
      COMMAND "${DIFF_PROGRAM}" -u --label "expected ${EXPECTED}"
              --label "actual ${ACTUAL}" "${EXPECTED}" "${ACTUAL}")
  else()
    execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "--- expected")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E cat "${EXPECTED}")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "+++ actual")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E cat "${ACTUAL}")
  endif()
  message(FATAL_ERROR "the replay output differs from ${EXPECTED} (diff above)")
endif()
message(STATUS "golden output matches ${EXPECTED}")
