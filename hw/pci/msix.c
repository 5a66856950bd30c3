/*
 * MSI-X: see include/hw/pci/msix.h. The table lives at offset 0 of the BAR
 * and the pending-bit array at MSIX_PBA_OFFSET.
 *
 * A vector is "live" when MSI-X is enabled, the function is not masked and
 * the entry is not masked; only then is its eventfd bound in the kernel.
 * Otherwise a main-loop watch drains the eventfd into the pending bit, which
 * a later unmask turns into one message, as the PCI spec asks.
 */
#define G_LOG_DOMAIN "pci"
#include "hw/pci/msix.h"
#include "migration/vmstate.h"
#include <glib-unix.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MSIX_ENTRY_SIZE 16
#define MSIX_PBA_OFFSET 2048
/* Message Control bits. */
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
/* Vector Control bit 0. */
#define MSIX_ENTRY_MASKED 1

typedef struct MsixVector {
    int fd;
    int handle;        /* the machine's binding, -1 if unbound */
    uint64_t bound_addr;
    uint32_t bound_data;
    guint watch;       /* latching writes while not live */
    bool pending;
} MsixVector;

struct PciMsix {
    PciDevice *dev;
    Machine *machine;
    unsigned nvectors, cap;
    uint8_t table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
    MsixVector vectors[MSIX_MAX_VECTORS];
};

static uint16_t msix_control(PciMsix *msix)
{
    return pci_get_word(&msix->dev->config[msix->cap + 2]);
}

bool msix_enabled(PciMsix *msix)
{
    return msix_control(msix) & MSIX_CTRL_ENABLE;
}

unsigned msix_nvectors(PciMsix *msix)
{
    return msix->nvectors;
}

static uint64_t entry_addr(PciMsix *msix, unsigned v)
{
    const uint8_t *e = &msix->table[v * MSIX_ENTRY_SIZE];
    return pci_get_long(e) | (uint64_t)pci_get_long(e + 4) << 32;
}

static uint32_t entry_data(PciMsix *msix, unsigned v)
{
    return pci_get_long(&msix->table[v * MSIX_ENTRY_SIZE + 8]);
}

static bool vector_live(PciMsix *msix, unsigned v)
{
    uint16_t ctrl = msix_control(msix);
    return (ctrl & MSIX_CTRL_ENABLE) && !(ctrl & MSIX_CTRL_MASKALL) &&
           !(pci_get_long(&msix->table[v * MSIX_ENTRY_SIZE + 12]) & MSIX_ENTRY_MASKED);
}

static void drain(int fd)
{
    uint64_t n;
    while (read(fd, &n, sizeof(n)) == sizeof(n)) {
    }
}

static gboolean latch_pending(gint fd, GIOCondition cond, gpointer opaque)
{
    MsixVector *vec = opaque;
    drain(fd);
    vec->pending = true;
    return G_SOURCE_CONTINUE;
}

static void deliver(PciMsix *msix, unsigned v)
{
    if (msix->machine->send_msi) {
        msix->machine->send_msi(msix->machine, entry_addr(msix, v), entry_data(msix, v));
    }
}

/* Without a kernel binding a live vector is delivered from the main loop. */
static gboolean deliver_from_loop(gint fd, GIOCondition cond, gpointer opaque)
{
    PciMsix *msix = opaque;
    drain(fd);
    for (unsigned v = 0; v < msix->nvectors; v++) {
        if (msix->vectors[v].fd == fd) {
            deliver(msix, v);
        }
    }
    return G_SOURCE_CONTINUE;
}

static void unbind(PciMsix *msix, MsixVector *vec)
{
    if (vec->handle >= 0) {
        msix->machine->msi_unbind(msix->machine, vec->handle, vec->fd);
        vec->handle = -1;
    }
}

static void stop_watch(MsixVector *vec)
{
    if (vec->watch) {
        g_source_remove(vec->watch);
        vec->watch = 0;
    }
}

/* Bring vector @v's binding in line with the table and control bits. */
static void update_vector(PciMsix *msix, unsigned v)
{
    MsixVector *vec = &msix->vectors[v];
    if (!vector_live(msix, v)) {
        unbind(msix, vec);
        if (!vec->watch) {
            vec->watch = g_unix_fd_add(vec->fd, G_IO_IN, latch_pending, vec);
        }
        return;
    }
    stop_watch(vec);
    if (vec->pending) {
        vec->pending = false;
        deliver(msix, v);
    }
    uint64_t addr = entry_addr(msix, v);
    uint32_t data = entry_data(msix, v);
    g_autoptr(GError) err = NULL;
    if (!msix->machine->msi_bind) {
        vec->watch = g_unix_fd_add(vec->fd, G_IO_IN, deliver_from_loop, msix);
    } else if (vec->handle < 0) {
        /* An eventfd written while unbound is delivered by KVM at bind. */
        vec->handle = msix->machine->msi_bind(msix->machine, vec->fd, addr, data, &err);
    } else if (addr != vec->bound_addr || data != vec->bound_data) {
        if (!msix->machine->msi_rebind(msix->machine, vec->handle, addr, data, &err)) {
            unbind(msix, vec);
        }
    }
    if (err) {
        /* Fall back to delivering from the main loop: slower, still correct. */
        g_warning("%s MSI-X vector %u: %s", msix->dev->name, v, err->message);
        vec->watch = g_unix_fd_add(vec->fd, G_IO_IN, deliver_from_loop, msix);
    }
    vec->bound_addr = addr;
    vec->bound_data = data;
}

static void update_all(PciMsix *msix)
{
    for (unsigned v = 0; v < msix->nvectors; v++) {
        update_vector(msix, v);
    }
}

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
    PciMsix *msix = opaque;
    if (offset + size <= msix->nvectors * MSIX_ENTRY_SIZE) {
        return size == 8 ? pci_get_long(&msix->table[offset]) | (uint64_t)pci_get_long(&msix->table[offset + 4]) << 32
                         : pci_get_long(&msix->table[offset]);
    }
    if (offset >= MSIX_PBA_OFFSET) {
        uint64_t bits = 0;
        unsigned first = (offset - MSIX_PBA_OFFSET) * 8;
        for (unsigned i = 0; i < size * 8 && first + i < msix->nvectors; i++) {
            bits |= (uint64_t)msix->vectors[first + i].pending << i;
        }
        return bits;
    }
    return 0;
}

static void bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    PciMsix *msix = opaque;
    if (offset + size > msix->nvectors * MSIX_ENTRY_SIZE) {
        return; /* the PBA is read-only */
    }
    for (unsigned i = 0; i < size; i += 4) {
        pci_set_long(&msix->table[offset + i], value >> (8 * i));
    }
    update_vector(msix, offset / MSIX_ENTRY_SIZE);
}

static const IoRegionOps msix_bar_ops = {
    .read = bar_read,
    .write = bar_write,
    .min_size = 4,
    .max_size = 8,
};

PciMsix *msix_new(PciDevice *dev, unsigned nvectors, unsigned bar)
{
    g_assert(nvectors >= 1 && nvectors <= MSIX_MAX_VECTORS);
    PciMsix *msix = g_new0(PciMsix, 1);
    msix->dev = dev;
    msix->machine = pci_device_machine(dev);
    msix->nvectors = nvectors;
    msix->cap = pci_add_capability(dev, PCI_CAP_ID_MSIX, 12);
    uint8_t *c = &dev->config[msix->cap];
    pci_set_word(c + 2, nvectors - 1);
    pci_set_long(c + 4, bar);                   /* table at offset 0 */
    pci_set_long(c + 8, MSIX_PBA_OFFSET | bar); /* PBA */
    dev->wmask[msix->cap + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
    for (unsigned v = 0; v < nvectors; v++) {
        msix->vectors[v].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert(msix->vectors[v].fd >= 0);
        msix->vectors[v].handle = -1;
    }
    pci_device_add_bar(dev, bar, MSIX_BAR_SIZE, PCI_BAR_MEM32, &msix_bar_ops, msix);
    msix_reset(msix);
    return msix;
}

void msix_reset(PciMsix *msix)
{
    memset(msix->table, 0, sizeof(msix->table));
    for (unsigned v = 0; v < msix->nvectors; v++) {
        msix->table[v * MSIX_ENTRY_SIZE + 12] = MSIX_ENTRY_MASKED;
        msix->vectors[v].pending = false;
        drain(msix->vectors[v].fd);
    }
    pci_set_word(&msix->dev->config[msix->cap + 2], msix->nvectors - 1);
    update_all(msix);
}

void msix_free(PciMsix *msix)
{
    if (!msix) {
        return;
    }
    for (unsigned v = 0; v < msix->nvectors; v++) {
        unbind(msix, &msix->vectors[v]);
        stop_watch(&msix->vectors[v]);
        close(msix->vectors[v].fd);
    }
    g_free(msix);
}

void msix_config_write(PciMsix *msix, unsigned reg, unsigned size)
{
    if (reg < msix->cap + 4 && msix->cap + 2 < reg + size) {
        update_all(msix);
    }
}

void msix_notify(PciMsix *msix, unsigned vector)
{
    if (vector < msix->nvectors) {
        uint64_t one = 1;
        /* Only fails when the counter would overflow: the vector is pending anyway. */
        (void)!write(msix->vectors[vector].fd, &one, sizeof(one));
    }
}

/* ---- migration ---- */

static bool msix_pre_save(void *opaque, GError **err)
{
    PciMsix *msix = opaque;
    /* A masked vector's write the main loop has not latched yet is pending all the same. */
    for (unsigned v = 0; v < msix->nvectors; v++) {
        MsixVector *vec = &msix->vectors[v];
        uint64_t n;
        if (!vector_live(msix, v) && read(vec->fd, &n, sizeof(n)) == sizeof(n)) {
            vec->pending = true;
        }
    }
    return true;
}

static bool msix_post_load(void *opaque, int version, GError **err)
{
    PciMsix *msix = opaque;
    for (unsigned v = msix->nvectors; v < MSIX_MAX_VECTORS; v++) {
        msix->vectors[v].pending = false;
    }
    update_all(msix);
    return true;
}

static const VMStateField vector_fields[] = {
    VMSTATE_BOOL(MsixVector, pending),
    VMSTATE_END,
};

static const VMStateDescription vector_vmsd = {
    .name = "msix/vector",
    .version = 1,
    .minimum_version = 1,
    .fields = vector_fields,
};

static const VMStateField msix_fields[] = {
    VMSTATE_BUFFER(PciMsix, table),
    VMSTATE_STRUCT_ARRAY(PciMsix, vectors, vector_vmsd, MsixVector),
    VMSTATE_END,
};

const VMStateDescription msix_vmsd = {
    .name = "msix",
    .version = 1,
    .minimum_version = 1,
    .fields = msix_fields,
    .pre_save = msix_pre_save,
    .post_load = msix_post_load,
};
