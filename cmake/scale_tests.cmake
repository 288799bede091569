# Issue 13: scale-out across hosts (the real backend and three proctord, each in
# its own network namespace) and the soak. The long variants carry the label
# `soak`, which tools/test.sh leaves out of its default run (tools/test.sh -L soak
# runs them); the short ones run by default.
if(BUILD_TESTING)
  function(proctor_scale_test name node timeout)
    add_test(NAME ${name}
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                     ${CMAKE_SOURCE_DIR}/tests/integration/${node})
    set_tests_properties(${name} PROPERTIES LABELS "${ARGN}" TIMEOUT ${timeout}
      ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration"
      RESOURCE_LOCK docker_agent)
  endfunction()
  proctor_scale_test(scale.three_agents_across_hosts
                     test_scale.py::test_three_agents_across_hosts 300 integration)
  proctor_scale_test(scale.three_agents_across_hosts_long
                     test_scale.py::test_three_agents_across_hosts_long 900 integration soak)
  proctor_scale_test(soak.short test_soak.py::test_soak_short 300 integration)
  proctor_scale_test(soak.long test_soak.py::test_soak_long 3600 integration soak)
endif()
