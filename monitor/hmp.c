#define G_LOG_DOMAIN "monitor"
/*
 * The human monitor, as reached through QMP's human-monitor-command: a
 * small table of commands whose output (errors included) is text for a
 * person, so nothing here is a QMP error.
 */
#include "monitor-internal.h"
#include <string.h>

typedef void (*HmpFn)(Monitor *m, unsigned cpu, const char *args, GString *out);

typedef struct {
    const char *name;
    HmpFn fn;
    const char *params, *help;
} HmpCommand;

static void info_status(Monitor *m, unsigned cpu, const char *args, GString *out)
{
    g_string_append_printf(out, "VM status: %s\n", m->server->ops->status(m->server->vm));
}

static void info_registers(Monitor *m, unsigned cpu, const char *args, GString *out)
{
    g_autoptr(GError) err = NULL;
    if (!m->server->ops->cpu_registers || !m->server->ops->cpu_registers(m->server->vm, cpu, out, &err)) {
        g_string_append_printf(out, "%s\n", err ? err->message : "registers are not available");
    }
}

static const HmpCommand info_commands[] = {
    { "status", info_status, "", "show the current VM status (running|paused)" },
    { "registers", info_registers, "", "show the cpu registers" },
    { NULL },
};

static const HmpCommand *find(const HmpCommand *table, const char *name)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

static void hmp_info(Monitor *m, unsigned cpu, const char *args, GString *out)
{
    g_autofree char *what = g_strstrip(g_strdup(args));
    const HmpCommand *c = *what ? find(info_commands, what) : NULL;
    if (!c) {
        for (c = info_commands; c->name; c++) {
            g_string_append_printf(out, "info %s%s%s -- %s\n", c->name, *c->params ? " " : "", c->params,
                                   c->help);
        }
        return;
    }
    c->fn(m, cpu, "", out);
}

/* "x/Ni ADDR": only the instruction format; ADDR is a number or $pc. */
static void hmp_x(Monitor *m, unsigned cpu, const char *args, GString *out)
{
    g_autofree char *a = g_strstrip(g_strdup(args));
    unsigned count = 1;
    const char *p = a;
    if (*p == '/') {
        char *end;
        guint64 n = g_ascii_strtoull(p + 1, &end, 10);
        count = end == p + 1 ? 1 : (unsigned)MIN(n, 1024);
        if (*end != 'i') {
            g_string_append(out, "x: only the 'i' (instruction) format is supported\n");
            return;
        }
        p = end + 1;
    }
    while (*p == ' ') {
        p++;
    }
    bool at_pc = strcmp(p, "$pc") == 0;
    uint64_t addr = 0;
    if (!at_pc) {
        char *end;
        addr = g_ascii_strtoull(p, &end, 0);
        if (!*p || *end) {
            g_string_append_printf(out, "x: invalid address '%s'\n", p);
            return;
        }
    }
    g_autoptr(GError) err = NULL;
    if (!m->server->ops->cpu_disassemble ||
        !m->server->ops->cpu_disassemble(m->server->vm, cpu, at_pc, addr, count, out, &err)) {
        g_string_append_printf(out, "%s\n", err ? err->message : "disassembly is not available");
    }
}

static void hmp_help(Monitor *m, unsigned cpu, const char *args, GString *out);

static const HmpCommand commands[] = {
    { "help", hmp_help, "[cmd]", "show the help" },
    { "info", hmp_info, "[subcommand]", "show various information about the system state" },
    { "x", hmp_x, "/fmt addr", "virtual memory dump starting at 'addr' (fmt: Ni, or $pc for addr)" },
    { NULL },
};

static void hmp_help(Monitor *m, unsigned cpu, const char *args, GString *out)
{
    for (const HmpCommand *c = commands; c->name; c++) {
        g_string_append_printf(out, "%s %s -- %s\n", c->name, c->params, c->help);
    }
}

char *hmp_run(Monitor *m, const char *line, unsigned cpu)
{
    GString *out = g_string_new(NULL);
    const char *p = line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    /* The name ends at a blank or, for "x/2i", at the slash. */
    size_t len = strcspn(p, " \t/");
    g_autofree char *name = g_strndup(p, len);
    if (!*name) {
        return g_string_free(out, FALSE);
    }
    const HmpCommand *c = find(commands, name);
    if (!c) {
        g_string_append_printf(out, "unknown command: '%s'\n", name);
    } else {
        c->fn(m, cpu, p + len, out);
    }
    /* A terminal's line ends, as QEMU's monitor writes them. */
    g_string_replace(out, "\n", "\r\n", 0);
    return g_string_free(out, FALSE);
}
