add_library(proctor_core STATIC
  src/core/log.c
  src/core/loop.c
  src/core/util.c
  src/core/value.c)
target_include_directories(proctor_core PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(proctor_core PUBLIC PkgConfig::MSGPACK m)
target_link_libraries(agent_core INTERFACE proctor_core)
