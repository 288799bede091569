# The admin's tools around policies (issue 11): `proctor test-policies`,
# `proctor run --explain` and proctord's decision lines at debug level; and
# proctord's --runtime (issue 14), which feeds the runtimes policy.
if(BUILD_TESTING)
  # proctor test-policies: an admin's specs in a directory outside the repository.
  add_test(NAME cli.test_policies
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/cli/test_test_policies.sh $<TARGET_FILE:proctor>
                   ${CMAKE_SOURCE_DIR}/tests/policies)
  set_tests_properties(cli.test_policies PROPERTIES LABELS unit TIMEOUT 120)

  # proctor run --explain: one line per decision on stderr, the JSON result unchanged.
  add_test(NAME cli.explain
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/cli/test_explain.sh $<TARGET_FILE:proctor>
                   ${PROCTOR_PYTHON}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # proctord -v: the same lines in its log (discovery's map_runtimes(), no backend needed).
  add_test(NAME agent.explain_debug_log
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/cli/test_explain_debug_log.sh
                   $<TARGET_FILE:proctord>)
  # proctord --runtime (inginious-agent-docker's) feeds the runtimes policy.
  add_test(NAME agent.runtime_option
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/cli/test_runtime_option.sh $<TARGET_FILE:proctord>)
  set_tests_properties(cli.explain agent.explain_debug_log agent.runtime_option
    PROPERTIES LABELS integration TIMEOUT 120 RESOURCE_LOCK docker_agent)
endif()
