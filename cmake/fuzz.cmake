# Fuzzing: libFuzzer harnesses (tests/fuzz/) and the CI smoke test.
#
# Two roles, one file:
#  - every build registers the ctest test `fuzz.smoke` (label fuzz), which runs
#    `tools/fuzz.sh --smoke` in a build tree of its own: the harnesses need
#    clang, while the project's main build uses gcc;
#  - a tree configured by tools/fuzz.sh with CC=clang and -DPROCTOR_FUZZ=ON
#    (plus PROCTOR_SANITIZE=address,undefined) instruments every target for
#    coverage and builds the harnesses (target `fuzz_all`).
# Included before the areas' fragments, so that add_compile_options() here
# reaches every library the harnesses link.

option(PROCTOR_FUZZ "Build the libFuzzer harnesses (clang only; see tools/fuzz.sh)" OFF)

if(PROCTOR_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PROCTOR_FUZZ needs clang: configure with CC=clang (tools/fuzz.sh does)")
  endif()
  if(NOT PROCTOR_SANITIZE MATCHES "address")
    message(FATAL_ERROR "PROCTOR_FUZZ needs -DPROCTOR_SANITIZE=address,undefined")
  endif()
  # Coverage for libFuzzer in the libraries too, not only in the harnesses.
  # src/ carries gcc's -Wjump-misses-init, which clang does not know.
  add_compile_options(-fsanitize=fuzzer-no-link -Wno-unknown-warning-option)

  # "name:library,library": tests/fuzz/fuzz_<name>.c and the libraries it exercises.
  set(PROCTOR_FUZZ_HARNESSES
    "value_unpack:proctor_core"
    "backend_decode:proctor_backend"
    "docker_stream:proctor_docker"
    "docker_reply:proctor_docker"
    "docker_attach:proctor_docker"
    "rt_msgpack:proctor_rt"
    "rt_json:proctor_rt"
    "rt_args:proctor_rt"
    "rt_intern:proctor_rt"
    "rt_ipc:proctor_rt"
    "policy_results:proctor_policy,proctor_backend")
  add_custom_target(fuzz_all)
  foreach(entry ${PROCTOR_FUZZ_HARNESSES})
    string(REGEX REPLACE "[:,]" ";" parts "${entry}")
    list(GET parts 0 name)
    list(REMOVE_AT parts 0)
    add_executable(fuzz_${name} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${name}.c)
    target_link_libraries(fuzz_${name} PRIVATE ${parts})
    target_include_directories(fuzz_${name} PRIVATE ${CMAKE_SOURCE_DIR}/src
                               ${CMAKE_SOURCE_DIR}/tests/fuzz)
    target_compile_definitions(fuzz_${name} PRIVATE
                               PROCTOR_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz_all fuzz_${name})
  endforeach()
elseif(BUILD_TESTING)
  # Short runs of every harness with ASan+UBSan; fails on any crash or
  # property violation. Its own tree: ${CMAKE_BINARY_DIR}/fuzz.
  add_test(NAME fuzz.smoke
           COMMAND ${CMAKE_SOURCE_DIR}/tools/fuzz.sh --smoke --build-dir ${CMAKE_BINARY_DIR}/fuzz)
  set_tests_properties(fuzz.smoke PROPERTIES LABELS fuzz TIMEOUT 1200)
endif()
