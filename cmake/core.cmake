add_library(proctor_core STATIC
  src/core/log.c
  src/core/loop.c
  src/core/metrics.c
  src/core/util.c
  src/core/value.c
  src/core/worker.c)
target_include_directories(proctor_core PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_BINARY_DIR}/generated)
find_package(Threads REQUIRED)
target_link_libraries(proctor_core PUBLIC proctor_common PkgConfig::MSGPACK Threads::Threads m)
target_link_libraries(agent_core INTERFACE proctor_core)
