// Catch2's test runner, in a file of its own so that editing the tests does
// not rebuild it.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
