# docker: Docker Engine API client (libcurl multi on the loop; the endpoint
# table and JSON in docker_api.c), the events watch, the cgroup CPU reader, the
# raw attach connection and the I/O-free attach-stream parsers.
add_library(proctor_docker STATIC
  src/docker/docker_api.c
  src/docker/docker_attach.c
  src/docker/docker_cgroup.c
  src/docker/docker_client.c
  src/docker/docker_events.c
  src/docker/docker_stream.c)
target_link_libraries(proctor_docker PUBLIC proctor_core PkgConfig::CURL PkgConfig::CJSON)
target_link_libraries(agent_core INTERFACE proctor_docker)
# Engine replies carry JSON numbers (doubles): gcc's -fsanitize=undefined
# leaves out the double->integer range check, which this module needs most.
if(PROCTOR_SANITIZE MATCHES "undefined" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  target_compile_options(proctor_docker PRIVATE -fsanitize=float-cast-overflow)
endif()

add_executable(test_docker_stream tests/unit/test_docker_stream.c)
target_link_libraries(test_docker_stream PRIVATE proctor_docker)
add_test(NAME docker_stream COMMAND test_docker_stream)
set_tests_properties(docker_stream PROPERTIES LABELS unit)

# Integration: the real Docker engine (fails loudly without it). The fixture
# builds the throwaway image proctor/test-busybox when it is missing.
add_executable(test_docker_client tests/unit/test_docker_client.c)
target_link_libraries(test_docker_client PRIVATE proctor_docker)
target_include_directories(test_docker_client PRIVATE ${CMAKE_SOURCE_DIR}/tests)
add_test(NAME docker_client_image COMMAND test_docker_client --setup-image)
set_tests_properties(docker_client_image PROPERTIES
  LABELS integration FIXTURES_SETUP docker_test_image)
add_test(NAME docker_client COMMAND test_docker_client)
set_tests_properties(docker_client PROPERTIES
  LABELS integration FIXTURES_REQUIRED docker_test_image TIMEOUT 180)

# Fault injection with a scripted fake engine on a unix socket (no Docker needed).
add_executable(test_docker_faults tests/unit/test_docker_faults.c)
target_link_libraries(test_docker_faults PRIVATE proctor_docker)
target_include_directories(test_docker_faults PRIVATE ${CMAKE_SOURCE_DIR}/tests)
add_test(NAME docker_faults COMMAND test_docker_faults)
set_tests_properties(docker_faults PROPERTIES LABELS unit TIMEOUT 60)
