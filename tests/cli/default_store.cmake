# cli.default_store: the commands without --store use sqlite:converge.db in
# the working directory, so that replay, inspect and end see one state.
#
#   cmake -DCONVERGE=<converge> -DINPUT=<golden input> -DEXPECTED=<its output>
#         -DBAD_INPUT=<input whose line 2 is bad> -DWORK_DIR=<scratch dir>
#         -P default_store.cmake
#
# Runs in WORK_DIR, emptied first, with CONVERGE_STORE unset:
#  1. replay INPUT: the golden output, and converge.db is created;
#  2. inspect: reads that file;
#  3. replay INPUT again: the same decision lines, the stored ones, and
#     stderr says every action was decided before;
#  4. end 1 works on the file;
#  5. a replay that stops at a bad line keeps what came before it (the
#     SQLite batch is committed): run again, its first action is resumed;
#  6. CONVERGE_STORE replaces the default; inspect and end never create a
#     store file;
#  7. a replay whose first event comes long after the store's pending
#     tasks is refused, naming the store.
foreach(var CONVERGE INPUT EXPECTED BAD_INPUT WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "default_store.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs the converge command line in WORK_DIR with CONVERGE_STORE unset (or
# set to ENV_STORE), into out, err and rc.
macro(run)
  if(DEFINED ENV_STORE)
    set(_env "CONVERGE_STORE=${ENV_STORE}")
  else()
    set(_env --unset=CONVERGE_STORE)
  endif()
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env ${_env} "${CONVERGE}" ${ARGN}
    WORKING_DIRECTORY "${WORK_DIR}"
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
endmacro()

function(fail what)
  message(FATAL_ERROR "${what}\nexit status: ${rc}\n--- stdout\n${out}--- stderr\n${err}")
endfunction()

# Decision lines only.
function(decisions text var)
  string(REGEX MATCHALL "{\"type\":\"decision\"[^\n]*" lines "${text}")
  set(${var} "${lines}" PARENT_SCOPE)
endfunction()

# 1. The first replay: the golden output, on a new converge.db.
run(replay "${INPUT}")
file(READ "${EXPECTED}" expected)
if(NOT rc EQUAL 0 OR NOT out STREQUAL expected OR NOT err STREQUAL "")
  fail("replay without --store: expected the golden output ${EXPECTED}")
endif()
if(NOT EXISTS "${WORK_DIR}/converge.db")
  fail("replay without --store did not create converge.db")
endif()
set(first "${out}")

# 2. inspect reads the same file.
run(inspect)
if(NOT rc EQUAL 0 OR NOT out MATCHES "store: sqlite:converge.db\n"
   OR NOT out MATCHES "queue \"converge\": pending=[0-9]+ in_flight=0 dead=0")
  fail("inspect without --store: expected the state of converge.db")
endif()

# 3. The second replay resumes: stored decisions, said on stderr.
run(replay "${INPUT}")
decisions("${first}" want)
decisions("${out}" got)
if(NOT rc EQUAL 0 OR NOT got STREQUAL want OR want STREQUAL ""
   OR NOT err MATCHES "4 actions were decided before this run in sqlite:converge.db; their stored decisions were replayed")
  fail("second replay without --store: expected the first run's decisions, replayed")
endif()

# 4. end works on the file.
run(end 1)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^instance 1: ")
  fail("end 1 without --store")
endif()

# 5. A bad line: what came before it is committed.
run(replay --store sqlite:bad.db "${BAD_INPUT}")
decisions("${out}" got)
list(LENGTH got n)
if(NOT rc EQUAL 1 OR NOT n EQUAL 1 OR NOT err MATCHES "line 2: ")
  fail("replay of a bad input on SQLite: expected one decision, then the error")
endif()
run(replay --store sqlite:bad.db "${BAD_INPUT}")
if(NOT rc EQUAL 1 OR NOT err MATCHES "1 action was decided before this run in sqlite:bad.db")
  fail("replay of a bad input again: expected its first action resumed")
endif()

# 6. CONVERGE_STORE replaces the default; inspect and end create nothing.
file(REMOVE "${WORK_DIR}/converge.db" "${WORK_DIR}/converge.db-wal"
  "${WORK_DIR}/converge.db-shm")
set(ENV_STORE memory:)
run(replay "${INPUT}")
if(NOT rc EQUAL 0 OR NOT out STREQUAL expected OR EXISTS "${WORK_DIR}/converge.db")
  fail("replay with CONVERGE_STORE=memory: expected no converge.db")
endif()
set(ENV_STORE sqlite:other.db)
run(replay "${INPUT}")
if(NOT rc EQUAL 0 OR NOT EXISTS "${WORK_DIR}/other.db")
  fail("replay with CONVERGE_STORE=sqlite:other.db: expected other.db")
endif()
# 7. A store holding tasks of an earlier run due long before the first
#    event (other.db's sweep, at the times of INPUT): refused at once,
#    instead of running the sweep for every minute between.
file(WRITE "${WORK_DIR}/later.jsonl" "{\"type\":\"action\",\"id\":99,\"time\":1700000000,\"converge_config\":{\"is_enabled\":false}}\n")
run(replay "${WORK_DIR}/later.jsonl")
if(NOT rc EQUAL 1 OR NOT err MATCHES "the store sqlite:other.db holds tasks due from .*more than 366 days before the first event")
  fail("replay far after the stored tasks: expected a refusal naming the store")
endif()
unset(ENV_STORE)
run(inspect)
if(NOT rc EQUAL 1 OR NOT err MATCHES "no such file converge.db"
   OR EXISTS "${WORK_DIR}/converge.db")
  fail("inspect on a missing converge.db: expected an error and no file")
endif()
run(end 1)
if(NOT rc EQUAL 1 OR EXISTS "${WORK_DIR}/converge.db")
  fail("end on a missing converge.db: expected an error and no file")
endif()
message(STATUS "the default store works")
