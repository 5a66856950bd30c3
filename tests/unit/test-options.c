#include "system/options.h"

static gboolean parse(VmConfig *cfg, GError **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    va_list ap;
    g_ptr_array_add(argv, "vireo-system-x86_64");
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *));) {
        g_ptr_array_add(argv, (gpointer)a);
    }
    va_end(ap);
    return vm_config_parse(cfg, argv->len, (char **)argv->pdata, err);
}

static void test_defaults(void)
{
    g_autoptr(VmConfig) cfg = vm_config_new();
    g_assert_true(parse(cfg, NULL, NULL));
    g_assert_cmpstr(cfg->machine, ==, "pc");
    g_assert_cmpstr(cfg->cpu, ==, "host");
    g_assert_cmpuint(cfg->ram_size, ==, 128 << 20);
    g_assert_cmpuint(cfg->smp_cpus, ==, 1);
    g_assert_cmpint(cfg->action, ==, VM_ACTION_RUN);
}

static void test_full_line(void)
{
    g_autoptr(VmConfig) cfg = vm_config_new();
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(cfg, &err, "-accel", "kvm", "-M", "pc", "-cpu", "host", "-m", "5G",
                        "--smp", "4,sockets=2,cores=2", "-kernel", "bzImage", "-initrd", "initrd",
                        "-append", "console=ttyS0 quiet", "-nographic", "-serial", "file:/tmp/x",
                        "-display", "none", "-nodefaults", "-no-reboot", "-no-shutdown",
                        "-name", "guest=vm1,debug-threads=on", "-pidfile", "/run/p", "-S", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(cfg->ram_size, ==, 5ULL << 30);
    g_assert_cmpuint(cfg->smp_cpus, ==, 4);
    g_assert_cmpuint(cfg->sockets, ==, 2);
    g_assert_cmpuint(cfg->cores, ==, 2);
    g_assert_cmpuint(cfg->threads, ==, 1);
    g_assert_cmpstr(cfg->kernel, ==, "bzImage");
    g_assert_cmpstr(cfg->append, ==, "console=ttyS0 quiet");
    g_assert_cmpstr(g_ptr_array_index(cfg->serials, 0), ==, "file:/tmp/x");
    g_assert_cmpstr(cfg->name, ==, "vm1");
    g_assert_true(cfg->nographic && cfg->nodefaults && cfg->no_reboot && cfg->no_shutdown &&
                  cfg->start_paused);
}

/* Each bad command line fails with one line that names the option. */
static void test_bad_lines(void)
{
    static const struct { const char *opt, *arg, *msg; } cases[] = {
        { "-bogus", NULL, "-bogus: invalid option" },
        { "-m", "0", "-m 0: memory size must be greater than 0" },
        { "-m", "12Q", "-m 12Q: '12Q' is not a size" },
        { "-smp", "0", "-smp 0: cpus must be a number from 1 to 1024, not '0'" },
        { "-smp", "3,sockets=2", "-smp 3,sockets=2: sockets (2) * cores (1) * threads (1) != cpus (3)" },
        { "-smp", "2,dies=2", "-smp 2,dies=2: -smp: unknown parameter 'dies'" },
        { "-accel", "tcg", "-accel tcg: accelerator 'tcg' is not available" },
        { "-serial", "pty", "-serial pty: serial backend must be" },
        { "-kernel", NULL, "-kernel: requires an argument" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(VmConfig) cfg = vm_config_new();
        g_autoptr(GError) err = NULL;
        g_assert_false(parse(cfg, &err, cases[i].opt, cases[i].arg, NULL));
        g_assert_nonnull(err);
        g_assert_true(g_str_has_prefix(err->message, cases[i].msg));
        g_assert_null(strchr(err->message, '\n'));
    }
}

static void test_actions(void)
{
    g_autoptr(VmConfig) a = vm_config_new();
    g_autoptr(VmConfig) b = vm_config_new();
    g_assert_true(parse(a, NULL, "-version", NULL));
    g_assert_cmpint(a->action, ==, VM_ACTION_VERSION);
    g_assert_true(parse(b, NULL, "-h", NULL));
    g_assert_cmpint(b->action, ==, VM_ACTION_HELP);
    g_autofree char *help = vm_config_help("vireo");
    g_assert_nonnull(strstr(help, "-smp N"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/options/defaults", test_defaults);
    g_test_add_func("/options/full-line", test_full_line);
    g_test_add_func("/options/bad-lines", test_bad_lines);
    g_test_add_func("/options/actions", test_actions);
    return g_test_run();
}
