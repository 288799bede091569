# backend: the INGInious backend protocol (msgpack) and the ZeroMQ link.
add_library(proctor_backend STATIC
  src/backend/backend_proto.c
  src/backend/backend_link.c)
target_link_libraries(proctor_backend PUBLIC proctor_core PkgConfig::MSGPACK PkgConfig::ZMQ)
target_link_libraries(agent_core INTERFACE proctor_backend)

if(BUILD_TESTING)
  add_executable(test_backend_proto tests/unit/test_backend_proto.c)
  target_link_libraries(test_backend_proto PRIVATE proctor_backend)
  add_test(NAME backend_proto COMMAND test_backend_proto)
  set_tests_properties(backend_proto PROPERTIES LABELS unit TIMEOUT 60)

  add_executable(test_backend_link_unit tests/unit/test_backend_link.c)
  target_link_libraries(test_backend_link_unit PRIVATE proctor_backend)
  target_include_directories(test_backend_link_unit PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME backend_link_unit COMMAND test_backend_link_unit)
  set_tests_properties(backend_link_unit PROPERTIES LABELS unit TIMEOUT 60)

  # The real INGInious backend and client live in this interpreter's venv.
  if(EXISTS /opt/proctor-venv/bin/python)
    set(_proctor_python_default /opt/proctor-venv/bin/python)
  else()
    set(_proctor_python_default python3)
  endif()
  set(PROCTOR_PYTHON ${_proctor_python_default} CACHE STRING
      "Python with INGInious installed (backend, client) for integration tests")

  add_executable(test_backend_link tests/integration/test_backend_link.c)
  target_link_libraries(test_backend_link PRIVATE proctor_backend)
  add_test(NAME backend_link_inginious
           COMMAND ${PROCTOR_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/test_backend_link.py
                   $<TARGET_FILE:test_backend_link>)
  set_tests_properties(backend_link_inginious PROPERTIES LABELS integration TIMEOUT 180)
endif()
