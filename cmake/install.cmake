# install: `cmake --install BUILD [--prefix P]` lays proctor out as a host
# (or a package) has it:
#   P/bin/proctord, P/bin/proctor
#   P/share/proctor/proctor-runtime            the static container-side runtime
#   P/share/proctor/environments/              build.sh and the example Dockerfiles
#                                              (builds images from the installed runtime)
#   P/share/proctor/policies/                  the shipped policy files and their README
#   P/share/man/man8/proctord.8, man1/proctor.1
#   P/etc/proctor/policies/                    the admin's policy directory (/etc when P is /usr)
# and the test `install.layout` checks that tree from a throwaway prefix.
include(GNUInstallDirs)

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
install(FILES man/proctord.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES man/proctor.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
# The admin's directory starts empty: a file missing there is the built-in one.
install(DIRECTORY DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/proctor/policies)

if(BUILD_TESTING)
  add_test(NAME install.layout
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/install/test_install.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(install.layout PROPERTIES LABELS integration TIMEOUT 300)
endif()

# systemd: the unit (Type=notify, watchdog, drain on stop) and its settings.
set(PROCTOR_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(packaging/proctord.service.in ${CMAKE_BINARY_DIR}/packaging/proctord.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/proctord.service DESTINATION lib/systemd/system)
install(FILES packaging/proctord.default DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/default
        RENAME proctord)
