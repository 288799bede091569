add_library(proctor_job STATIC
  src/job/agent.c
  src/job/discovery.c
  src/job/janitor.c
  src/job/container.c
  src/job/job.c
  src/job/pool.c
  src/job/job_student.c
  src/job/job_report.c
  src/job/job_dir.c)
target_link_libraries(proctor_job PUBLIC proctor_core proctor_docker proctor_backend proctor_policy)
target_link_libraries(agent_core INTERFACE proctor_job)

# systemd's notify protocol and watchdog (Type=notify): libsystemd's sd_notify.
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# --metrics: libmicrohttpd, driven from the event loop.
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
add_executable(proctord src/main.c src/service.c src/metrics_http.c)
target_link_libraries(proctord PRIVATE agent_core PkgConfig::SYSTEMD PkgConfig::MHD)

# task.yaml is read with libyaml (Debian libyaml-dev).
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
add_library(proctor_cli STATIC src/cli/task_yaml.c)
target_link_libraries(proctor_cli PUBLIC proctor_core PkgConfig::YAML)
add_executable(proctor src/cli/proctor.c)
target_link_libraries(proctor PRIVATE agent_core proctor_cli)

if(BUILD_TESTING)
  # The agent's identity, work-directory lock and port pool (no engine needed).
  add_executable(test_agent tests/unit/test_agent.c)
  target_link_libraries(test_agent PRIVATE agent_core)
  target_include_directories(test_agent PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME agent_unit COMMAND test_agent)
  set_tests_properties(agent_unit PROPERTIES LABELS unit TIMEOUT 60)
endif()
