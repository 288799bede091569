# Agent-wide tests: core unit tests, lint checks, and proctord end to end with
# the real INGInious backend/client and the real Docker engine.
if(BUILD_TESTING)
  add_executable(test_core tests/unit/test_core.c)
  target_link_libraries(test_core PRIVATE proctor_core)
  target_include_directories(test_core PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME core COMMAND test_core)
  set_tests_properties(core PROPERTIES LABELS unit TIMEOUT 60)

  # House rules that grep can enforce: no bare assert(), clang-format clean.
  add_test(NAME lint_no_assert
           COMMAND sh -c "! grep -rnE '(^|[^_A-Za-z])assert[[:space:]]*\\(' --include=*.c --include=*.h src | grep -vE ':[0-9]+:[[:space:]]*(\\*|//|/\\*)'"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME lint_clang_format
           COMMAND sh -c "clang-format --dry-run --Werror $(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(lint_no_assert lint_clang_format PROPERTIES LABELS lint)

  # A hostile grading-side helper for the escape test, copied into a task
  # directory by the test: static, libc only, no sanitizers (it runs in a
  # FROM-scratch image).
  add_executable(test_swapper tests/integration/swapper.c)
  set_target_properties(test_swapper PROPERTIES COMPILE_OPTIONS "${PROCTOR_WARNINGS};-O2"
                        LINK_OPTIONS "-static")

  set(PROCTOR_AGENT_TESTS
    success failed_with_problems_and_state partial_grade_multi envelope_input_custom_tags_archive
    upload error_default invalid_result_is_a_crash runner_without_result timeout_cpu
    timeout_wall overflow_memory answered_at_its_result the_first_result_is_final
    overflow_before_the_result answer_at_exit run_student kill_from_client several_jobs_at_once
    backend_restart_says_hello_again unknown_environment_and_malformed_messages
    policy_reload_on_sighup hostile_runner_flooding_garbage output_caps_from_policy
    ssh_debug_reaches_the_client run_student_return_codes docker_engine_late
    sigterm_drains_running_jobs kill_removes_student_containers
    hostile_grader_cannot_reach_the_host student_container_caps
    two_agents_on_one_engine_leave_each_other_alone a_work_directory_has_one_agent
    cli_runs_leave_each_other_alone drain_has_a_deadline time_caps_are_hard
    intern_arguments_follow_the_image_protocol result_key_order json_logs systemd_notify metrics
    deploy_image_grades_the_demo_course deploy_image_refuses_a_work_dir_elsewhere)
  # One ctest test per test function of FILE, named PREFIX.<t>; extra environment in ARGN.
  function(proctor_pytests prefix file)
    foreach(t ${PYTESTS})
      add_test(NAME ${prefix}.${t}
               COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                       ${CMAKE_SOURCE_DIR}/tests/integration/${file} -k "test_${t}")
      set_tests_properties(${prefix}.${t} PROPERTIES LABELS integration TIMEOUT 300
        ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration;${ARGN}"
        RESOURCE_LOCK docker_agent)
    endforeach()
  endfunction()
  set(PYTESTS ${PROCTOR_AGENT_TESTS})
  proctor_pytests(agent test_agent.py)
  # The same suite once more without the warm pool (--no-pool; agent.* runs with it, the
  # default environment warmed before the first job): every result must be the same.
  # Left out: tests of the agent's own surface (logs, metrics, notify, the deploy image).
  set(PROCTOR_COLD_TESTS ${PROCTOR_AGENT_TESTS})
  list(REMOVE_ITEM PROCTOR_COLD_TESTS json_logs systemd_notify metrics
       deploy_image_grades_the_demo_course deploy_image_refuses_a_work_dir_elsewhere)
  set(PYTESTS ${PROCTOR_COLD_TESTS})
  proctor_pytests(agent_cold test_agent.py PROCTOR_TEST_POOL=off)
endif()

if(BUILD_TESTING)
  # The demo course under INGInious's Python agent and under proctord.
  add_test(NAME compat.python_agent_vs_proctord
           COMMAND ${PROCTOR_PYTHON} -m pytest -q -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/integration/test_compat.py)
  set_tests_properties(compat.python_agent_vs_proctord PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration"
    RESOURCE_LOCK docker_agent)
endif()

if(BUILD_TESTING)
  # The admin command line: one local run graded by the same job code.
  # The output is JSON (strict: no NaN/Infinity), read back with Python's parser.
  set(PROCTOR_JSON_CHECK "import json, sys; d = json.loads(sys.stdin.read(), parse_constant=lambda c: sys.exit('not JSON: ' + c))")
  add_test(NAME cli.run_success
           COMMAND sh -c "$<TARGET_FILE:proctor> run --tasks examples/courses demo hello --input \"script=echo 'Hello, world!'\" | ${PROCTOR_PYTHON} -c \"${PROCTOR_JSON_CHECK}; sys.exit(d['result'][0] != 'success')\""
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # Floats JSON cannot write (a custom value of 1e999) come out as null.
  add_test(NAME cli.run_prints_valid_json
           COMMAND sh -c "$<TARGET_FILE:proctor> run --tasks tests/integration/courses it custom_nonfinite | ${PROCTOR_PYTHON} -c \"${PROCTOR_JSON_CHECK}; sys.exit(d['custom'] != {'big': None, 'small': None, 'fine': 2.5})\""
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME cli.run_failed_exit_status
           COMMAND sh -c "$<TARGET_FILE:proctor> run --tasks examples/courses demo hello --input script=true; test $? -eq 1"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME cli.run_task_limits
           COMMAND sh -c "$<TARGET_FILE:proctor> run --tasks examples/courses demo cpu --input note=x | ${PROCTOR_PYTHON} -c \"${PROCTOR_JSON_CHECK}; sys.exit(d['result'][0] != 'timeout')\""
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # A typo in the tasks directory, the course or the task names what is missing (status 2),
  # and the run's only output on stderr is that line (warnings only by default).
  add_test(NAME cli.run_names_what_is_missing
           COMMAND sh -c "set -e; p=$<TARGET_FILE:proctor>; \
e=$($p run --tasks /nonexistent demo hello 2>&1 >/dev/null) && exit 1 || test $? -eq 2; echo \"$e\" | grep -qx 'proctor: no tasks directory /nonexistent (give it with --tasks DIR)'; \
e=$($p run --tasks examples/courses nocourse hello 2>&1 >/dev/null) && exit 1 || test $? -eq 2; echo \"$e\" | grep -qx 'proctor: no course nocourse in examples/courses'; \
e=$($p run --tasks examples/courses demo notask 2>&1 >/dev/null) && exit 1 || test $? -eq 2; echo \"$e\" | grep -qx 'proctor: no task notask in course demo (examples/courses/demo/notask)'; \
e=$($p run --tasks examples/courses demo hello --input \"script=echo 'Hello, world!'\" 2>&1 >/dev/null); test -z \"$e\""
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # `proctor envs`: a table by default, JSON with --json.
  add_test(NAME cli.envs_table_and_json
           COMMAND sh -c "set -e; p=$<TARGET_FILE:proctor>; $p envs | head -1 | grep -q '^ENVIRONMENT *IMAGE *RUNTIME *PORTS *ADVERTISED$'; $p envs | grep -q '^docker/default '; $p envs --json | ${PROCTOR_PYTHON} -c \"${PROCTOR_JSON_CHECK}; sys.exit('default' not in d['docker'])\""
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # On a terminal (a pty from script(1)), a live line with the phase and the times
  # against the task's limits (demo/sleep: 2 s CPU, 4 s wall), cleared before the result.
  add_test(NAME cli.status_line_on_a_terminal
           COMMAND sh -c "out=$(script -qec '$<TARGET_FILE:proctor> run --tasks examples/courses demo sleep' /dev/null | tr '\\r' '\\n'); echo \"$out\" | grep -Eq '^.\\[Kdemo/sleep: running, CPU [-0-9.]+ of 2 s, wall [0-9.]+ of 4 s$' && echo \"$out\" | grep -q '\"result\":.*timeout'"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(cli.run_success cli.run_failed_exit_status cli.run_task_limits
    cli.run_prints_valid_json cli.run_names_what_is_missing cli.envs_table_and_json cli.status_line_on_a_terminal
    PROPERTIES LABELS integration TIMEOUT 120 RESOURCE_LOCK docker_agent)
endif()

if(BUILD_TESTING)
  # `--check-policies`: the shipped sets pass; a broken file is refused with
  # its file:line and a non-zero status, by proctord and by proctor alike.
  add_test(NAME cli.check_policies_shipped
           COMMAND sh -c "$<TARGET_FILE:proctord> --check-policies policies && $<TARGET_FILE:proctor> check-policies examples/policies/exam && $<TARGET_FILE:proctor> check-policies examples/policies/jvm"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME cli.check_policies_broken
           COMMAND sh -c "d=$(mktemp -d) && cp policies/*.lua $d/ && printf 'local x = \\n' >> $d/ports.lua && out=$($<TARGET_FILE:proctord> --check-policies $d 2>&1); rc=$?; rm -rf $d; echo \"$out\"; test $rc -ne 0 && echo \"$out\" | grep -q 'ports.lua:[0-9]'"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME cli.proctord_refuses_broken_policies_at_start
           COMMAND sh -c "d=$(mktemp -d) && cp policies/*.lua $d/ && printf 'return 42\\n' > $d/results.lua && out=$($<TARGET_FILE:proctord> --policies $d --tmpdir $d/tmp tcp://127.0.0.1:1 2>&1); rc=$?; rm -rf $d; echo \"$out\"; test $rc -ne 0 && echo \"$out\" | grep -q 'results.lua'"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # inginious-agent-docker's options: accepted with the same meaning, or a clear message.
  add_test(NAME cli.python_agent_options
           COMMAND sh -c "set -e; p=$<TARGET_FILE:proctord>; $p --fs local --version | grep -q '^proctord '; \
$p --fs-help | grep -q 'local filesystem only'; \
$p --debugmode --version 2>&1 | grep -q 'no equivalent; ignored'; \
! $p --fs s3 tcp://127.0.0.1:1 2>/tmp/proctor-opt.$$; grep -q 'local filesystem only' /tmp/proctor-opt.$$; \
! $p --runtime runc tcp://127.0.0.1:1 2>/tmp/proctor-opt.$$; grep -q 'needs at least 2 arguments' /tmp/proctor-opt.$$; \
! $p --runtime runc docker gpu tcp://127.0.0.1:1 2>/tmp/proctor-opt.$$; grep -q 'unknown flag gpu' /tmp/proctor-opt.$$; \
! $p --runtime 'runc docker gpu' tcp://127.0.0.1:1 2>/tmp/proctor-opt.$$; grep -q 'unknown flag gpu' /tmp/proctor-opt.$$; \
$p --runtime runc docker shared --runtime kata-runtime kata root --version | grep -q '^proctord '; \
! $p --debugger tcp://127.0.0.1:1 2>/tmp/proctor-opt.$$; grep -q 'not supported' /tmp/proctor-opt.$$; \
$p --disable-autorestart --version | grep -q '^proctord '; rm -f /tmp/proctor-opt.$$")
  set_tests_properties(cli.check_policies_shipped cli.check_policies_broken
    cli.proctord_refuses_broken_policies_at_start cli.python_agent_options
    PROPERTIES LABELS lua TIMEOUT 60)
endif()

if(BUILD_TESTING)
  # proctor's task.yaml reader (libyaml); with the source tree, every task.yaml in it must parse.
  add_executable(test_task_yaml tests/unit/test_task_yaml.c)
  target_link_libraries(test_task_yaml PRIVATE proctor_cli)
  target_include_directories(test_task_yaml PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME task_yaml COMMAND test_task_yaml ${CMAKE_SOURCE_DIR})
  set_tests_properties(task_yaml PROPERTIES LABELS unit TIMEOUT 60)
endif()

if(BUILD_TESTING)
  # The warm pool end to end (tests/integration/test_pool.py).
  set(PROCTOR_POOL_TESTS
    warm_job_gets_its_own_limits kill_of_a_warm_job
    warm_container_killed_while_waiting_is_never_handed_out new_image_replaces_warm_containers
    policy_reload_replaces_warm_containers sigkill_and_restart_leave_no_warm_container
    no_pool_flag
    # student containers started ahead (src/job/job_student.c)
    students_started_ahead pool_pairs_a_student_container
    student_ahead_limits_count_from_the_request student_ahead_that_does_not_fit_goes_cold
    student_ahead_killed_while_waiting_is_never_handed_out
    no_student_ahead_without_proctors_intern)
  set(PYTESTS ${PROCTOR_POOL_TESTS})
  proctor_pytests(pool test_pool.py)
endif()
