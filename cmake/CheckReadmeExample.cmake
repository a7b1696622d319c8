# cmake -DREADME=... -DEXAMPLE=... -P CheckReadmeExample.cmake
# Fails unless README contains the example file verbatim in a ```cpp block,
# so the README's embedding example cannot drift from the compiled one.
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(FIND "${readme}" "```cpp\n${example}```" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not contain ${EXAMPLE} verbatim in a ```cpp block; copy the file into the README")
endif()
message(STATUS "README example matches ${EXAMPLE}")
