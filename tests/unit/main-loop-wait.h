/* For unit tests that drive devices through the GLib main loop. */
#pragma once
#include <glib.h>

/* Spin the default main context until @cond holds or a second passes. */
#define ITERATE_UNTIL(cond)                                                  \
    do {                                                                     \
        gint64 end_ = g_get_monotonic_time() + G_USEC_PER_SEC;               \
        while (!(cond) && g_get_monotonic_time() < end_) {                   \
            g_main_context_iteration(NULL, FALSE);                           \
            g_usleep(500);                                                   \
        }                                                                    \
    } while (0)
