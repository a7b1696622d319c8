# cmake -DDUMP=<metrics_dump> -DPROMTOOL=<promtool> -DOUT=<file> -P check_metrics.cmake
# Writes metrics_dump's text to OUT and runs `promtool check metrics` on it.
# Fails if promtool is missing, exits non-zero, or prints anything (its lint
# findings, which are errors here too).
if(NOT PROMTOOL OR NOT EXISTS "${PROMTOOL}")
  message(FATAL_ERROR "promtool not found (PROMTOOL='${PROMTOOL}'): install "
    "the Debian package prometheus (scripts/deps.sh does) and re-run cmake")
endif()
execute_process(COMMAND "${DUMP}" OUTPUT_FILE "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${DUMP} failed: ${rc}")
endif()
execute_process(COMMAND "${PROMTOOL}" check metrics INPUT_FILE "${OUT}"
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "" OR NOT err STREQUAL "")
  message(FATAL_ERROR "promtool check metrics ${OUT}: exit ${rc}\n${out}${err}")
endif()
file(STRINGS "${OUT}" lines)
list(LENGTH lines n)
message(STATUS "promtool check metrics: ${n} lines of ${OUT}, no problems")
