# INGInious's own grading image (tests/upstream/build.sh: Debian packages plus
# the container API of the pinned inginious package), built and checked by
# itself, without an agent. The build is part of the test, so a fresh machine
# builds it (debootstrap, a few minutes); later runs take it from the cache.
if(BUILD_TESTING)
  add_test(NAME upstream.image
           COMMAND ${PROCTOR_PYTHON} -m pytest -q -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/upstream/test_upstream_image.py)
  set_tests_properties(upstream.image PROPERTIES LABELS integration TIMEOUT 1800
    RESOURCE_LOCK docker_agent FIXTURES_SETUP upstream_image)

  # proctord with that image: INGInious's runner, tools, Python API,
  # run_student library and intern, SSH server; and the same course under
  # INGInious's Python agent, compared field by field.
  foreach(t proctord_grades_with_inginious_s_image same_outcome_as_the_python_agent
            ssh_debug_with_a_real_ssh_client kill_on_inginious_s_image
            ssh_student_with_a_real_ssh_client)
    add_test(NAME upstream.${t}
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -p no:cacheprovider
                     ${CMAKE_SOURCE_DIR}/tests/upstream/test_upstream_agent.py -k "test_${t}")
    set_tests_properties(upstream.${t} PROPERTIES LABELS integration TIMEOUT 900
      ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration"
      RESOURCE_LOCK docker_agent FIXTURES_REQUIRED upstream_image)
  endforeach()
endif()
