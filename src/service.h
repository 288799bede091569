/**
 * @file service.h
 * proctord as a systemd service (Type=notify): READY once registered with the
 * backend, STATUS with the job slots in use, RELOADING/READY around a policy
 * reload, STOPPING on a drain, and the watchdog pinged from the event loop, so
 * that a loop that froze stops the pings and systemd restarts the agent.
 * Without NOTIFY_SOCKET (not started by systemd) every call does nothing.
 */
#pragma once

#include <stdbool.h>

#include "core/loop.h"

/** Arms the watchdog ping when systemd asked for one (WATCHDOG_USEC). 0 or -errno. */
int service_init(struct loop *loop);
/** Registered with the backend (again): READY=1 and the status. */
void service_ready(long slots_used, long slots);
/** The slots in use changed. */
void service_status(long slots_used, long slots);
void service_reloading(void);
/** A drain or a stop began. */
void service_stopping(void);
