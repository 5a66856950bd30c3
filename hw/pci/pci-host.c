#define G_LOG_DOMAIN "pci"
#include "hw/pci/pci-host.h"
#include <string.h>

#define CONFIG_ADDRESS_ENABLE 0x80000000u
#define RCR_SYS_RST 0x02 /* with RST: a full reset rather than a CPU-only one */
#define RCR_RST_CPU 0x04
#define NR_FUNCTIONS 2

/* Identity of the functions on bus 0 a PC always has. */
static const struct {
    uint8_t devfn;
    uint16_t vendor, device;
    uint32_t class_rev; /* class << 8 | revision */
    uint8_t header_type;
} builtin[NR_FUNCTIONS] = {
    { 0x00, 0x8086, 0x1237, 0x06000002, 0x00 }, /* i440FX host bridge */
    { 0x08, 0x8086, 0x7000, 0x06010000, 0x80 }, /* PIIX3 ISA bridge, multi-function */
};

struct PciHost {
    Machine *machine;
    uint32_t config_address;
    uint8_t rcr;
    uint8_t config[NR_FUNCTIONS][256];
};

static void set_le16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

void pci_host_reset(PciHost *h)
{
    h->config_address = 0;
    h->rcr = 0;
    for (unsigned i = 0; i < NR_FUNCTIONS; i++) {
        uint8_t *c = h->config[i];
        memset(c, 0, 256);
        set_le16(c + 0x00, builtin[i].vendor);
        set_le16(c + 0x02, builtin[i].device);
        set_le16(c + 0x04, 0x0007); /* command: I/O, memory, bus master */
        set_le16(c + 0x06, 0x0200); /* status: medium DEVSEL */
        memcpy(c + 0x08, &(uint32_t){ GUINT32_TO_LE(builtin[i].class_rev) }, 4);
        c[0x0e] = builtin[i].header_type;
    }
}

static uint8_t *function_config(PciHost *h)
{
    uint32_t a = h->config_address;
    if (!(a & CONFIG_ADDRESS_ENABLE) || ((a >> 16) & 0xff) != 0) {
        return NULL;
    }
    uint8_t devfn = (a >> 8) & 0xff;
    for (unsigned i = 0; i < NR_FUNCTIONS; i++) {
        if (builtin[i].devfn == devfn) {
            return h->config[i];
        }
    }
    return NULL;
}

/* Registers a guest may change here: command and the cache-line/latency bytes. */
static bool writable(unsigned off)
{
    return off == 0x04 || off == 0x05 || off == 0x0c || off == 0x0d;
}

static uint64_t pci_host_read(void *opaque, uint64_t offset, unsigned size)
{
    PciHost *h = opaque;
    if (offset == 0 && size == 4) {
        return h->config_address;
    }
    if (offset == 1 && size == 1) {
        return h->rcr;
    }
    if (offset < 4) {
        return ~0ULL;
    }
    uint8_t *c = function_config(h);
    unsigned reg = (h->config_address & 0xfc) + (offset - 4);
    if (!c || reg + size > 256) {
        return ~0ULL;
    }
    uint64_t v = 0;
    memcpy(&v, c + reg, size);
    return GUINT64_FROM_LE(v);
}

static void pci_host_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    PciHost *h = opaque;
    if (offset == 0 && size == 4) {
        h->config_address = value;
        return;
    }
    if (offset == 1 && size == 1) {
        h->rcr = value & (RCR_SYS_RST | RCR_RST_CPU);
        if (value & RCR_RST_CPU) {
            h->machine->request_reset(h->machine, SHUTDOWN_CAUSE_GUEST_RESET);
        }
        return;
    }
    if (offset < 4) {
        return;
    }
    uint8_t *c = function_config(h);
    unsigned reg = (h->config_address & 0xfc) + (offset - 4);
    for (unsigned i = 0; c && i < size && reg + i < 256; i++) {
        if (writable(reg + i)) {
            c[reg + i] = value >> (8 * i);
        }
    }
}

static const IoRegionOps pci_host_ops = {
    .read = pci_host_read,
    .write = pci_host_write,
    .min_size = 1,
    .max_size = 4,
};

PciHost *pci_host_new(Machine *m, GError **err)
{
    PciHost *h = g_new0(PciHost, 1);
    h->machine = m;
    pci_host_reset(h);
    if (!io_map_add(m->pio, 0xcf8, 8, &pci_host_ops, h, "pci-host", err)) {
        g_free(h);
        return NULL;
    }
    return h;
}

void pci_host_free(PciHost *h)
{
    if (h) {
        io_map_remove(h->machine->pio, 0xcf8);
        g_free(h);
    }
}
