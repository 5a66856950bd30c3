/*
 * System Control Port A (0x92), the "fast A20 and reset" port of PS/2 and
 * later PCs: bit 1 gates A20 (stored only: KVM does not mask A20), writing
 * bit 0 as 1 resets the machine.
 */
#pragma once
#include "hw/core/machine.h"
#include <glib.h>
#include <stdbool.h>

#define PORT92_IO_PORT 0x92

typedef struct Port92 Port92;

Port92 *port92_new(Machine *m, GError **err);
void port92_reset(Port92 *p);
void port92_free(Port92 *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Port92, port92_free)

bool port92_a20_enabled(const Port92 *p);
