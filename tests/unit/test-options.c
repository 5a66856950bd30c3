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

/* -chardev: each backend with its keys, any frontend may claim one, but only one. */
static void test_chardevs(void)
{
    g_autoptr(VmConfig) cfg = vm_config_new();
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(cfg, &err, "-chardev", "socket,id=s0,path=/tmp/s0,server=on,wait=off",
                        "-chardev", "socket,id=t0,host=127.0.0.1,port=4444,server,wait=off",
                        "-chardev", "socket,id=t1,port=4445,server=on,wait=off",
                        "-chardev", "socket,id=f3,fd=3,server=on,wait=off",
                        "-chardev", "stdio,id=con", "-chardev", "file,id=log,path=/tmp/log",
                        "-chardev", "null,id=nothing", "-mon", "chardev=s0,mode=control",
                        "-serial", "chardev:log", "-device", "virtconsole,chardev=t0", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(cfg->chardevs->len, ==, 7);
    const VmChardev *s0 = vm_config_find_chardev(cfg, "s0");
    g_assert_cmpint(s0->backend, ==, VM_CHARDEV_SOCKET);
    g_assert_cmpstr(s0->path, ==, "/tmp/s0");
    g_assert_cmpint(s0->fd, ==, -1);
    const VmChardev *t0 = vm_config_find_chardev(cfg, "t0");
    g_assert_cmpstr(t0->host, ==, "127.0.0.1");
    g_assert_cmpstr(t0->port, ==, "4444");
    g_assert_cmpstr(vm_config_find_chardev(cfg, "t1")->host, ==, ""); /* every address */
    g_assert_cmpint(vm_config_find_chardev(cfg, "f3")->fd, ==, 3);
    g_assert_cmpint(vm_config_find_chardev(cfg, "con")->backend, ==, VM_CHARDEV_STDIO);
    g_assert_cmpstr(vm_config_find_chardev(cfg, "log")->path, ==, "/tmp/log");
    g_assert_cmpint(vm_config_find_chardev(cfg, "nothing")->backend, ==, VM_CHARDEV_NULL);
    g_assert_cmpstr(vm_config_chardev_user(cfg, "s0"), ==, "-mon");
    g_assert_cmpstr(vm_config_chardev_user(cfg, "log"), ==, "-serial");
    g_assert_cmpstr(vm_config_chardev_user(cfg, "t0"), ==, "-device");
    g_assert_null(vm_config_chardev_user(cfg, "nothing")); /* unused is fine, as in QEMU */
}

static void test_chardev_errors(void)
{
    static const char *const cases[][8] = { /* arguments, then the message; NULL after */
        { "-chardev", "pty,id=x", "-chardev pty,id=x: unknown backend 'pty'" },
        { "-chardev", "id=x", "-chardev id=x: unknown backend ''" },
        { "-chardev", "null", "-chardev null: no id given" },
        { "-chardev", "null,id=x,path=/p", "-chardev null,id=x,path=/p: -chardev: unknown parameter 'path'" },
        { "-chardev", "file,id=x", "-chardev file,id=x: no path given" },
        { "-chardev", "socket,id=x,server=on,wait=off", "-chardev socket,id=x,server=on,wait=off: give exactly one of" },
        { "-chardev", "socket,id=x,path=/a,port=1,server=on,wait=off", "give exactly one of" },
        { "-chardev", "socket,id=x,host=h,server=on,wait=off", "port=: expected a TCP port number" },
        { "-chardev", "socket,id=x,port=65536,server=on,wait=off", "port=65536: expected a TCP port number" },
        { "-chardev", "socket,id=x,path=/a", "only server=on,wait=off is supported" },
        { "-chardev", "socket,id=x,path=/a,server=on", "only server=on,wait=off is supported" },
        { "-chardev", "socket,id=x,path=/a,server=maybe,wait=off", "server" },
        { "-chardev", "socket,id=x,path=/a,server=on,wait=off,telnet=on", "unknown parameter 'telnet'" },
        { "-chardev", "null,id=x", "-chardev", "null,id=x", "-chardev null,id=x: duplicate chardev id 'x'" },
        { "-mon", "chardev=x,mode=control", "-mon chardev=x: chardev 'x' not found" },
        { "-serial", "chardev:x", "-serial chardev:x: chardev 'x' not found" },
        { "-device", "virtconsole,chardev=x", "-device virtconsole,chardev=x: chardev 'x' not found" },
        { "-chardev", "null,id=x", "-mon", "chardev=x,mode=control",
          "-mon chardev=x: chardev 'x' is not a socket" },
        { "-chardev", "file,id=x,path=/l", "-serial", "chardev:x", "-device", "virtconsole,chardev=x",
          "-device virtconsole,chardev=x: chardev 'x' is already used by -serial chardev:x" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(VmConfig) cfg = vm_config_new();
        g_autoptr(GError) err = NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_ptr_array_add(argv, "vireo-system-x86_64");
        size_t n = 0;
        while (cases[i][n + 1]) {
            g_ptr_array_add(argv, (gpointer)cases[i][n++]);
        }
        const char *want = cases[i][n];
        g_assert_false(vm_config_parse(cfg, argv->len, (char **)argv->pdata, &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, want) || strchr(err->message, '\n')) {
            g_error("case %zu: '%s' does not say '%s' on one line", i, err->message, want);
        }
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
    g_test_add_func("/options/chardevs", test_chardevs);
    g_test_add_func("/options/chardev-errors", test_chardev_errors);
    return g_test_run();
}
