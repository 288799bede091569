# Fault tests (issue 13): tests/integration/test_faults.py, one ctest per scenario.
#
# faults.<name> run in the default ctest run (label integration). The long kill
# loop (20 SIGKILLs under load) is faults.soak_sigkill_loop, label `soak`, only
# registered when configured with -DPROCTOR_SOAK=ON:
#   cmake -S . -B build -DPROCTOR_SOAK=ON && ctest --test-dir build -L soak
option(PROCTOR_SOAK "Register the long soak tests (label soak)" OFF)

if(BUILD_TESTING)
  set(PROCTOR_FAULTS_ENV
      "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration")
  # name: pytest -k expression
  set(PROCTOR_FAULTS_TESTS
    "sigkill_creating:test_sigkill_at_phase and creating"
    "sigkill_attaching:test_sigkill_at_phase and attaching"
    "sigkill_attached:test_sigkill_at_phase and attached"
    "sigkill_running:test_sigkill_at_phase and running"
    "sigkill_student_starting:test_sigkill_at_phase and student_starting"
    "sigkill_reporting:test_sigkill_at_phase and reporting"
    "sigkill_loop:test_sigkill_loop")
  foreach(entry ${PROCTOR_FAULTS_TESTS})
    string(FIND "${entry}" ":" colon)
    string(SUBSTRING "${entry}" 0 ${colon} name)
    math(EXPR colon "${colon} + 1")
    string(SUBSTRING "${entry}" ${colon} -1 expr)
    add_test(NAME faults.${name}
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                     ${CMAKE_SOURCE_DIR}/tests/integration/test_faults.py -k "${expr}")
    set_tests_properties(faults.${name} PROPERTIES LABELS integration TIMEOUT 300
      ENVIRONMENT "${PROCTOR_FAULTS_ENV}" RESOURCE_LOCK docker_agent)
  endforeach()
  if(PROCTOR_SOAK)
    add_test(NAME faults.soak_sigkill_loop
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                     ${CMAKE_SOURCE_DIR}/tests/integration/test_faults.py -k test_sigkill_loop)
    set_tests_properties(faults.soak_sigkill_loop PROPERTIES LABELS soak TIMEOUT 1800
      ENVIRONMENT "${PROCTOR_FAULTS_ENV};FAULTS_KILLS=20" RESOURCE_LOCK docker_agent)
  endif()
endif()
