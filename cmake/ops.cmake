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

if(BUILD_TESTING)
  # The README's install section, run for real: the Debian package built and
  # installed, proctord started from the installed unit as systemd would
  # (played by the test), a job graded, /metrics scraped, reload, stop, purge.
  # Needs root; installs on this machine (tools/package.sh --check takes the same lock).
  add_test(NAME package.service_runs
           COMMAND ${PROCTOR_PYTHON} -m pytest -q -x -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/install/test_service.py)
  set_tests_properties(package.service_runs PROPERTIES LABELS "package;integration" TIMEOUT 1800
    ENVIRONMENT "PROCTOR_BUILD=${CMAKE_BINARY_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/integration"
    RESOURCE_LOCK docker_agent)
endif()

if(BUILD_TESTING)
  # Upstream's `--fs local --fs-location DIR` names the tasks directory, as --tasks does:
  # proctord's start line says which one it uses (polled until written, then stopped).
  add_test(NAME cli.fs_location_is_the_tasks_dir
           COMMAND sh -c "d=$(mktemp -d); $<TARGET_FILE:proctord> --fs local --fs-location /srv/ops14-tasks --tmpdir $d/w tcp://127.0.0.1:1 2>$d/log & pid=$!; \
i=0; until grep -q 'tasks /srv/ops14-tasks$' $d/log || ! kill -0 $pid 2>/dev/null || [ $i -ge 1200 ]; do i=$((i+1)); sleep 0.05; done; \
kill $pid; wait $pid; grep -q 'tasks /srv/ops14-tasks$' $d/log; r=$?; [ $r -eq 0 ] || cat $d/log; rm -rf $d; exit $r")
  set_tests_properties(cli.fs_location_is_the_tasks_dir PROPERTIES LABELS integration TIMEOUT 120
                       RESOURCE_LOCK docker_agent)
endif()
