# Fault tests (issue 13): tests/integration/test_faults.py, one ctest per scenario.
#
# faults.<name> run in the default ctest run (label integration). The long kill
# loop (20 SIGKILLs under load) is faults.soak_sigkill_loop, label `soak`, only
# registered when configured with -DPROCTOR_SOAK=ON:
#   cmake -S . -B build -DPROCTOR_SOAK=ON && ctest --test-dir build -L soak
# (or directly: FAULTS_KILLS=20 python -m pytest tests/integration/test_faults.py -k loop)
option(PROCTOR_SOAK "Register the long soak tests (label soak)" OFF)

if(BUILD_TESTING)
  set(PROCTOR_FAULTS_PY ${CMAKE_SOURCE_DIR}/tests/integration/test_faults.py)
  set(PROCTOR_FAULTS_ENV
      "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration")
  # ctest name -> pytest node (test function [parameters])
  set(PROCTOR_FAULTS_TESTS)
  foreach(phase creating attaching attached running student_starting reporting)
    list(APPEND PROCTOR_FAULTS_TESTS "sigkill_${phase}=test_sigkill_at_phase[${phase}]")
  endforeach()
  list(APPEND PROCTOR_FAULTS_TESTS "sigkill_loop=test_sigkill_loop")
  foreach(action reset answer_lost http500)
    foreach(step create attach start wait inspect remove)
      # the job's own (cold) container; the warm pool's (made, waiting or taken)
      list(APPEND PROCTOR_FAULTS_TESTS "engine_${action}_${step}=test_engine_fault[${action}-${step}-job]")
      list(APPEND PROCTOR_FAULTS_TESTS "engine_${action}_${step}_pool=test_engine_fault[${action}-${step}-pool]")
    endforeach()
  endforeach()
  foreach(t reset_mid_attach_stream delay_past_timeouts gone_30s events_stream_cut docker29_events
          oom_event_lost)
    list(APPEND PROCTOR_FAULTS_TESTS "engine_${t}=test_engine_${t}")
  endforeach()
  foreach(t oversized_and_truncated_msgpack unknown_message_types same_job_twice
            kill_of_unknown_jobs stops_reading)
    list(APPEND PROCTOR_FAULTS_TESTS "backend_${t}=test_backend_${t}")
  endforeach()
  foreach(entry ${PROCTOR_FAULTS_TESTS})
    string(FIND "${entry}" "=" eq)
    string(SUBSTRING "${entry}" 0 ${eq} name)
    math(EXPR eq "${eq} + 1")
    string(SUBSTRING "${entry}" ${eq} -1 node)
    add_test(NAME faults.${name}
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                     "${PROCTOR_FAULTS_PY}::${node}")
    set_tests_properties(faults.${name} PROPERTIES LABELS integration TIMEOUT 300
      ENVIRONMENT "${PROCTOR_FAULTS_ENV}" RESOURCE_LOCK docker_agent)
  endforeach()
  if(PROCTOR_SOAK)
    add_test(NAME faults.soak_sigkill_loop
             COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                     "${PROCTOR_FAULTS_PY}::test_sigkill_loop")
    set_tests_properties(faults.soak_sigkill_loop PROPERTIES LABELS soak TIMEOUT 1800
      ENVIRONMENT "${PROCTOR_FAULTS_ENV};FAULTS_KILLS=20" RESOURCE_LOCK docker_agent)
  endif()
endif()
