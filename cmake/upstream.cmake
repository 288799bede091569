# INGInious's own grading image (tests/upstream/build.sh: Debian packages plus
# the container API of the pinned inginious package), built and checked by
# itself, without an agent. The build is part of the test, so a fresh machine
# builds it (debootstrap, a few minutes); later runs take it from the cache.
if(BUILD_TESTING)
  add_test(NAME upstream.image
           COMMAND ${PROCTOR_PYTHON} -m pytest -q -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/upstream/test_upstream_image.py)
  set_tests_properties(upstream.image PROPERTIES LABELS integration TIMEOUT 1800
    RESOURCE_LOCK docker_agent)
endif()
