// Catch2's test runner, shared by unit_tests and component_tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
