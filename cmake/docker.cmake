# docker: Docker Engine API client (libcurl multi on the loop), the raw attach
# connection and the I/O-free attach-stream parsers.
add_library(proctor_docker STATIC
  src/docker/docker_stream.c)
target_link_libraries(proctor_docker PUBLIC proctor_core)
target_link_libraries(agent_core INTERFACE proctor_docker)

add_executable(test_docker_stream tests/unit/test_docker_stream.c)
target_link_libraries(test_docker_stream PRIVATE proctor_docker)
add_test(NAME docker_stream COMMAND test_docker_stream)
set_tests_properties(docker_stream PROPERTIES LABELS unit)
