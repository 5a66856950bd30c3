/* vireo-system-x86_64: the process entry point. */
#include "system/options.h"
#include <stdio.h>
#include <stdlib.h>

#define PROG "vireo-system-x86_64"

int main(int argc, char **argv)
{
    g_autoptr(VmConfig) cfg = vm_config_new();
    g_autoptr(GError) err = NULL;

    if (!vm_config_parse(cfg, argc, argv, &err)) {
        fprintf(stderr, PROG ": %s\n", err->message);
        return 1;
    }
    switch (cfg->action) {
    case VM_ACTION_VERSION:
        printf("Vireo version " VIREO_VERSION " (QEMU-compatible command line)\n");
        return 0;
    case VM_ACTION_HELP: {
        g_autofree char *help = vm_config_help(PROG);
        fputs(help, stdout);
        return 0;
    }
    case VM_ACTION_RUN:
        break;
    }
    fprintf(stderr, PROG ": machine '%s' cannot be started yet: the KVM machine is not built\n",
            cfg->machine);
    return 1;
}
