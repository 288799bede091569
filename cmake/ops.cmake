# Operations (issue 14): the JSON log's event fields, and the installed
# package run as its systemd unit would run it.
if(BUILD_TESTING)
  add_test(NAME agent.json_log_fields
           COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/integration/test_json_logs.py)
  set_tests_properties(agent.json_log_fields PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration"
    RESOURCE_LOCK docker_agent)
endif()
