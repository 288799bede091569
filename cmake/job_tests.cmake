# Fault tests of the job layer through the agent's public API, on a scripted
# fake Docker engine (tests/helpers/fake_engine.[ch]): one binary, one ctest
# per scenario (no Docker needed).
if(BUILD_TESTING)
  add_library(proctor_fake_engine STATIC tests/helpers/fake_engine.c)
  target_include_directories(proctor_fake_engine PUBLIC ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(proctor_fake_engine PUBLIC agent_core PkgConfig::CJSON)

  add_executable(test_job_faults tests/unit/test_job_faults.c)
  target_link_libraries(test_job_faults PRIVATE proctor_fake_engine agent_core PkgConfig::MSGPACK)

  set(PROCTOR_JOB_FAULT_SCENARIOS
    success create_error attach_refused attach_cut_mid_frame start_error wait_error
    wait_error_always inspect_error delete_error events_error stats_error stats_stream_ends kill_error
    create_stalls start_stalls inspect_stalls delete_stalls kill_while_preparing kill_while_creating kill_while_attaching
    kill_while_starting kill_while_starting_refused kill_while_inspecting
    kill_while_removing start_cut wait_cut kill_while_running kill_after_result timeout_cpu overflow_oom_event
    overflow_inspect stop_jobs_while_running abandon_while_running student_run
    student_create_error student_oom student_hangs_parent_killed student_stats_stream_ends student_hangs_parent_exits
    student_start_error student_wait_error student_after_result
    student_while_parent_killed student_parent_exits_during_create)
  foreach(s ${PROCTOR_JOB_FAULT_SCENARIOS})
    add_test(NAME job_faults.${s} COMMAND test_job_faults ${s})
    set_tests_properties(job_faults.${s} PROPERTIES LABELS unit TIMEOUT 60)
  endforeach()
  # Every scenario of the table has its ctest above.
  add_test(NAME job_faults.all_registered
           COMMAND test_job_faults --registered ${PROCTOR_JOB_FAULT_SCENARIOS})
  set_tests_properties(job_faults.all_registered PROPERTIES LABELS unit TIMEOUT 60)
endif()
