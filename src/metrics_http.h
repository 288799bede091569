/**
 * @file metrics_http.h
 * --metrics ADDR:PORT: GET /metrics in Prometheus' text format
 * (core/metrics.h), served by libmicrohttpd from proctord's own event loop
 * (its epoll descriptor is one of the loop's; no thread).
 */
#pragma once

#include <stddef.h>

#include "core/loop.h"

struct metrics_http;

/** Listens on "ADDR:PORT" (IPv4, or [IPv6]:PORT). NULL with err filled on failure. */
struct metrics_http *metrics_http_start(struct loop *loop, const char *addr, char *err,
                                        size_t errlen);
/** NULL is a no-op. */
void metrics_http_stop(struct metrics_http *m);
