# common: libc-only code shared by the daemon and the container runtime
# (src/common): wire constants, UTF-8, buffers, the app framer, base64, the
# privilege drop. No logging, no xmalloc: errors are returned (-ENOMEM...).
# The static runtime compiles PROCTOR_COMMON_SOURCES itself (runtime.cmake),
# with its own options; everything else links proctor_common.

set(PROCTOR_COMMON_SOURCES
  ${CMAKE_SOURCE_DIR}/src/common/base64.c
  ${CMAKE_SOURCE_DIR}/src/common/buf.c
  ${CMAKE_SOURCE_DIR}/src/common/framer.c
  ${CMAKE_SOURCE_DIR}/src/common/mp_head.c
  ${CMAKE_SOURCE_DIR}/src/common/privdrop.c
  ${CMAKE_SOURCE_DIR}/src/common/utf8.c)

add_library(proctor_common STATIC ${PROCTOR_COMMON_SOURCES})
target_include_directories(proctor_common PUBLIC ${CMAKE_SOURCE_DIR}/src)

if(BUILD_TESTING)
  add_executable(test_common ${CMAKE_SOURCE_DIR}/tests/unit/test_common.c)
  target_link_libraries(test_common PRIVATE proctor_common)
  target_include_directories(test_common PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME common COMMAND test_common)
  set_tests_properties(common PROPERTIES LABELS unit TIMEOUT 60)
endif()
