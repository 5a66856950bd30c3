/* Shared by the monitor's session code and its command table. */
#pragma once
#include "monitor/monitor.h"

/* QMP's error classes (the "class" member of an error reply). */
#define MONITOR_ERROR (monitor_error_quark())
GQuark monitor_error_quark(void);
typedef enum {
    MONITOR_ERROR_GENERIC,           /* GenericError */
    MONITOR_ERROR_COMMAND_NOT_FOUND, /* CommandNotFound */
    MONITOR_ERROR_DEVICE_NOT_FOUND, /* "DeviceNotFound": no device has that id */
} MonitorErrorCode;

const char *monitor_error_class(const GError *err);

/* One client session. */
typedef struct Monitor {
    MonitorServer *server;
    GSocket *sock;
    GSource *in_source, *out_source;
    struct JsonStream *stream;
    GString *out;          /* replies and events not yet written */
    bool negotiated;       /* qmp_capabilities done */
    bool closing;          /* drop after the current callback */
    bool busy;             /* inside the input callback: defer the free */
    GArray *passed_fds;    /* int: received by SCM_RIGHTS, not yet taken by getfd */
} Monitor;

typedef struct MonitorListener {
    MonitorServer *server;
    GSocket *sock;
    GSource *source;
    char *unix_path;       /* removed again at exit; NULL for an inherited socket */
    char *label, *filename; /* as query-chardev reports them */
} MonitorListener;

struct MonitorServer {
    const MonitorVmOps *ops;
    void *vm;
    GPtrArray *listeners;  /* MonitorListener */
    GPtrArray *clients;    /* Monitor */
    GHashTable *named_fds; /* getfd's name -> descriptor (GINT_TO_POINTER) */
    unsigned compat_count; /* -qmp options seen: the N of compat_monitorN */
};

/* Take the oldest descriptor @m received, or -1. */
int monitor_take_passed_fd(Monitor *m);
/* HMP: run @line against the VM, return its text output (errors included). */
char *hmp_run(Monitor *m, const char *line, unsigned cpu);

/*
 * Run one request (a parsed top-level JSON value) and return the reply
 * object; the caller adds nothing. @m->negotiated gates every command but
 * qmp_capabilities.
 */
JsonObject *qmp_dispatch(Monitor *m, JsonNode *request);
/* {"qemu": {...}, "package": ...}: query-version and the greeting. */
JsonObject *qmp_version_info(void);
/* query-qmp-schema's answer, also used by tests. */
JsonNode *qmp_schema(void);
