#define G_LOG_DOMAIN "port92"
#include "hw/misc/port92.h"
#include "migration/vmstate.h"

#define PORT92_RESET 0x01 /* write 1: fast reset; reads back 0 */
#define PORT92_A20 0x02

struct Port92 {
    Machine *m;
    uint8_t value;
};

static uint64_t port92_read(void *opaque, uint64_t offset, unsigned size)
{
    Port92 *p = opaque;
    return p->value;
}

static void port92_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    Port92 *p = opaque;

    p->value = value & ~PORT92_RESET;
    if (value & PORT92_RESET) {
        g_debug("guest reset through port 0x92");
        p->m->request_reset(p->m, SHUTDOWN_CAUSE_GUEST_RESET);
    }
}

static const IoRegionOps port92_ops = {
    .read = port92_read,
    .write = port92_write,
    .min_size = 1,
    .max_size = 1,
};

static const VMStateField port92_fields[] = {
    VMSTATE_UINT8(Port92, value),
    VMSTATE_END,
};

static bool port92_post_load(void *opaque, int version, GError **err)
{
    Port92 *p = opaque;
    p->value &= ~PORT92_RESET; /* takes effect at the write, never stored */
    return true;
}

static const VMStateDescription port92_vmsd = {
    .name = "port92",
    .version = 1,
    .minimum_version = 1,
    .fields = port92_fields,
    .post_load = port92_post_load,
};

void port92_reset(Port92 *p)
{
    p->value = PORT92_A20; /* a VMM boots with A20 already on */
}

Port92 *port92_new(Machine *m, GError **err)
{
    Port92 *p = g_new0(Port92, 1);

    p->m = m;
    if (!io_map_add(m->pio, PORT92_IO_PORT, 1, &port92_ops, p, "port92", err)) {
        g_free(p);
        return NULL;
    }
    port92_reset(p);
    vmstate_register(m, "port92", 0, &port92_vmsd, p);
    return p;
}

void port92_free(Port92 *p)
{
    if (p) {
        vmstate_unregister(p->m, p);
        io_map_remove(p->m->pio, PORT92_IO_PORT);
        g_free(p);
    }
}

bool port92_a20_enabled(const Port92 *p)
{
    return p->value & PORT92_A20;
}
