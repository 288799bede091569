#include "service.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "core/log.h"
#include "core/util.h"

static long watchdog_ms;

static void notify(const char *state)
{
    int ret = sd_notify(0, state);
    if (ret < 0)
        log_warn(LOG_MAIN, "cannot notify systemd (%s): %s", state, strerror(-ret));
}

static long on_watchdog(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    PROCTOR_UNUSED(data);
    // Sent from the loop itself: if it stops turning, the pings stop.
    notify("WATCHDOG=1");
    return watchdog_ms;
}

int service_init(struct loop *loop)
{
    uint64_t usec = 0;
    int ret = sd_watchdog_enabled(0, &usec);
    if (ret <= 0)
        return ret < 0 ? ret : 0;
    // Ping at half the period systemd waits for.
    watchdog_ms = (long)(usec / 2000);
    if (watchdog_ms < 1)
        watchdog_ms = 1;
    if (!loop_timer_add(loop, watchdog_ms, on_watchdog, NULL))
        return -ENOMEM;
    log_info(LOG_MAIN, "systemd watchdog: pinging every %ld ms", watchdog_ms);
    return 0;
}

void service_status(long used, long slots)
{
    char s[96];
    snprintf(s, sizeof s, "STATUS=%ld of %ld job slot(s) in use", used, slots);
    notify(s);
}

void service_ready(long used, long slots)
{
    char s[112];
    snprintf(s, sizeof s, "READY=1\nSTATUS=%ld of %ld job slot(s) in use", used, slots);
    notify(s);
}

void service_reloading(void)
{
    notify("RELOADING=1");
}

void service_stopping(void)
{
    notify("STOPPING=1\nSTATUS=stopping");
}
