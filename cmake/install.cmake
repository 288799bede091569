# install: `cmake --install BUILD [--prefix P]` lays proctor out as a host
# (or a package) has it:
#   P/bin/proctord, P/bin/proctor
#   P/share/proctor/proctor-runtime            the static container-side runtime
#   P/share/proctor/environments/              build.sh and the example Dockerfiles
#                                              (builds images from the installed runtime)
#   P/share/proctor/policies/                  the shipped policy files and their README
#   P/share/proctor/policies/spec/             their busted specs (examples to copy)
#   P/share/man/man8/proctord.8, man1/proctor.1
#   P/etc/proctor/policies/                    the admin's policy directory (/etc when P is /usr)
# and the test `install.layout` checks that tree from a throwaway prefix.
include(GNUInstallDirs)

# /etc when installed under /usr (the Debian package), else PREFIX/etc, so that
# `cmake --install --prefix P` never writes outside P.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(PROCTOR_ETC ${CMAKE_INSTALL_FULL_SYSCONFDIR})
else()
  set(PROCTOR_ETC ${CMAKE_INSTALL_SYSCONFDIR})
endif()

install(TARGETS proctord proctor RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS proctor-runtime RUNTIME DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor)
install(PROGRAMS examples/environments/build.sh
        DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor/environments)
install(FILES examples/environments/README.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor/environments)
install(DIRECTORY examples/environments/default examples/environments/student
        DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor/environments)
install(DIRECTORY policies/ DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor/policies
        FILES_MATCHING PATTERN "*.lua" PATTERN "README.md")
# The specs of the shipped files: examples for `proctor test-policies` to copy.
install(FILES tests/policies/limits_spec.lua tests/policies/ports_spec.lua
              tests/policies/runtimes_spec.lua tests/policies/results_spec.lua
              tests/policies/hardening_spec.lua
        DESTINATION ${CMAKE_INSTALL_DATADIR}/proctor/policies/spec)
install(FILES man/proctord.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES man/proctor.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
# The admin's directory starts empty: a file missing there is the built-in one.
install(DIRECTORY DESTINATION ${PROCTOR_ETC}/proctor/policies)

if(BUILD_TESTING)
  add_test(NAME install.layout
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/install/test_install.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(install.layout PROPERTIES LABELS integration TIMEOUT 300)
endif()

# systemd: the unit (Type=notify, watchdog, drain on stop) and its settings.
set(PROCTOR_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(packaging/proctord.service.in ${CMAKE_BINARY_DIR}/packaging/proctord.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/proctord.service DESTINATION lib/systemd/system)
install(FILES packaging/proctord.default DESTINATION ${PROCTOR_ETC}/default RENAME proctord)

# The Debian package: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (tools/package.sh). Its dependencies come from
# dpkg-shlibdeps on the binaries; /etc/default/proctord is a conffile (kept,
# and asked about, on upgrade); no maintainer script.
set(CPACK_PACKAGE_NAME proctor)
set(CPACK_PACKAGE_VENDOR "proctor")
set(CPACK_PACKAGE_CONTACT "proctor maintainers <proctor@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "INGInious grading agent for Docker, with Lua policies")
set(CPACK_PACKAGE_DESCRIPTION "proctord replaces INGInious's Python Docker agent: it connects to \
an unmodified INGInious backend, runs each submission in a grading container with CPU, \
wall-clock and memory limits, and returns a validated result. Its decisions are admin-editable \
Lua policies.")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io | docker-ce, busybox-static")
# `proctor test-policies` runs the admin's specs with busted under lua5.4.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "lua-busted, lua5.4")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/packaging/conffiles)
file(WRITE ${CMAKE_BINARY_DIR}/packaging/conffiles "/etc/default/proctord\n")
include(CPack)
