# runtime: the container-side multi-call binary (src/runtime), its unit tests
# and the image integration test. It includes nothing from src/core; what it
# shares with the daemon is src/common (libc only), compiled in here.

get_filename_component(PROCTOR_RT_TOP ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(PROCTOR_RT_SOURCES
  ${PROCTOR_RT_TOP}/src/runtime/rt_value.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_msgpack.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_json.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_common.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_feedback.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_rst.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_runner.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_archive.c
  ${PROCTOR_RT_TOP}/src/runtime/rt_student.c)

# The shipped binary: static against glibc only. The directory-wide options
# may carry -fsanitize=..., which cannot be linked statically, so this target
# gets its own option lists instead of the inherited ones.
add_executable(proctor-runtime ${PROCTOR_RT_SOURCES} ${PROCTOR_COMMON_SOURCES}
               ${PROCTOR_RT_TOP}/src/runtime/rt_main.c)
target_include_directories(proctor-runtime PRIVATE ${PROCTOR_RT_TOP}/src ${PROCTOR_RT_TOP}/src/runtime)
set_target_properties(proctor-runtime PROPERTIES
  COMPILE_OPTIONS "${PROCTOR_WARNINGS};-O2"
  LINK_OPTIONS "-static")

# The same sources with the project's usual flags (sanitizers included) for
# the unit tests, which call the tools in-process.
add_library(proctor_rt STATIC ${PROCTOR_RT_SOURCES})
target_include_directories(proctor_rt PUBLIC ${PROCTOR_RT_TOP}/src ${PROCTOR_RT_TOP}/src/runtime)
target_link_libraries(proctor_rt PUBLIC proctor_common)

foreach(t test_rt_value test_rt_feedback test_rt_rst test_rt_student test_rt_runner)
  add_executable(${t} ${PROCTOR_RT_TOP}/tests/runtime/${t}.c)
  target_link_libraries(${t} PRIVATE proctor_rt)
  target_include_directories(${t} PRIVATE ${PROCTOR_RT_TOP}/tests)
  add_test(NAME runtime_${t} COMMAND ${t})
  # The large-input cases (200k-key maps, multi-MB commands) take seconds
  # under ASan; quadratic code would not finish within this.
  set_tests_properties(runtime_${t} PROPERTIES LABELS unit TIMEOUT 300)
endforeach()

# The runtime's msgpack codec against msgpack-c (the daemon's), on generated
# values in both directions; msgpack-c only here, never in the runtime.
add_executable(test_rt_msgpack ${PROCTOR_RT_TOP}/tests/runtime/test_rt_msgpack.c)
target_link_libraries(test_rt_msgpack PRIVATE proctor_rt PkgConfig::MSGPACK m)
target_include_directories(test_rt_msgpack PRIVATE ${PROCTOR_RT_TOP}/tests)
add_test(NAME runtime_test_rt_msgpack COMMAND test_rt_msgpack)
set_tests_properties(runtime_test_rt_msgpack PROPERTIES LABELS unit TIMEOUT 300)

# Builds the example images (docker build, from local files only) and runs
# the runner in real containers; needs a Docker engine and fails without one.
add_test(NAME runtime_images
  COMMAND /opt/proctor-venv/bin/python ${PROCTOR_RT_TOP}/tests/runtime/test_images.py
          --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(runtime_images PROPERTIES LABELS integration TIMEOUT 600)
