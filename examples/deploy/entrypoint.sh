#!/bin/sh
# proctord in a container, configured like INGInious's agent service:
#   BACKEND           the backend's agent address (upstream's variable)
#   PROCTORD_TMPDIR   the work directory; a host directory mounted at the SAME path
#                     (the engine binds job directories by their host path:
#                     proctord checks it at start and says what to change)
#   PROCTORD_TASKS    the courses directory (upstream's agent reads ./tasks = /inginious/tasks)
#   PROCTORD_OPTS     any other proctord options (--concurrency, --metrics, --policies...)
# shellcheck disable=SC2086 # PROCTORD_OPTS is a list of words
exec /usr/bin/proctord --tmpdir "$PROCTORD_TMPDIR" --tasks "$PROCTORD_TASKS" $PROCTORD_OPTS "$BACKEND"
