#define G_LOG_DOMAIN "pci"
/*
 * The PCI bus core: configuration space semantics, BARs and INTx. Devices
 * own their PciDevice; the bus only indexes them by devfn.
 */
#include "hw/pci/pci.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <string.h>

#define NR_DEVFNS (PCI_SLOTS * PCI_FUNCTIONS)

struct PciBus {
    Machine *machine;
    PciBusConfig cfg;
    PciDevice *devices[NR_DEVFNS];
    unsigned intx_count[PCI_INTX_GSIS]; /* devices holding each shared line */
    uint64_t ecam_base;                 /* 0: no ECAM */
};

PciBus *pci_bus_new(Machine *m, const PciBusConfig *cfg)
{
    PciBus *bus = g_new0(PciBus, 1);
    bus->machine = m;
    bus->cfg = *cfg;
    return bus;
}

void pci_bus_free(PciBus *bus)
{
    if (!bus) {
        return;
    }
    for (unsigned i = 0; i < NR_DEVFNS; i++) {
        g_assert(!bus->devices[i]);
    }
    if (bus->ecam_base) {
        io_map_remove(bus->machine->mmio, bus->ecam_base);
    }
    g_free(bus);
}

PciDevice *pci_bus_device(PciBus *bus, uint8_t devfn)
{
    return bus->devices[devfn];
}

/* ---- INTx ---- */

unsigned pci_device_gsi(const PciDevice *dev)
{
    unsigned pin = dev->config[PCI_INTERRUPT_PIN];
    g_assert(pin >= 1 && pin <= 4);
    return PCI_INTX_FIRST_GSI + ((dev->devfn >> 3) + pin - 1) % PCI_INTX_GSIS;
}

/* Bring the shared line in step with what @dev drives and its INTX_DISABLE. */
static void update_intx(PciDevice *dev)
{
    bool disabled = pci_get_word(dev->config + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
    bool assert = dev->intx_level && !disabled;
    if (assert == dev->intx_asserted) {
        return;
    }
    dev->intx_asserted = assert;
    unsigned gsi = pci_device_gsi(dev);
    unsigned *count = &dev->bus->intx_count[gsi - PCI_INTX_FIRST_GSI];
    if (assert ? (*count)++ == 0 : --(*count) == 0) {
        IrqLine line = dev->bus->cfg.intx;
        line.line = gsi;
        irq_set(&line, assert);
    }
}

void pci_set_irq(PciDevice *dev, bool level)
{
    dev->intx_level = level;
    /* The interrupt status bit shows the device's request even when disabled. */
    uint16_t status = pci_get_word(dev->config + PCI_STATUS) & ~PCI_STATUS_INTERRUPT;
    pci_set_word(dev->config + PCI_STATUS, status | (level ? PCI_STATUS_INTERRUPT : 0));
    update_intx(dev);
}

/* ---- BARs ---- */

static unsigned bar_reg(unsigned index)
{
    return PCI_BAR0 + 4 * index;
}

/* The address the BAR's registers hold now (flag bits removed). */
static uint64_t bar_programmed(const PciDevice *dev, unsigned index, uint64_t *writable)
{
    const PciBar *bar = &dev->bars[index];
    const uint8_t *c = dev->config + bar_reg(index);
    const uint8_t *w = dev->wmask + bar_reg(index);
    uint64_t addr = pci_get_long(c), mask = pci_get_long(w);
    if (bar->flags & PCI_BAR_MEM64) {
        addr |= (uint64_t)pci_get_long(c + 4) << 32;
        mask |= (uint64_t)pci_get_long(w + 4) << 32;
    }
    *writable = mask;
    return addr & mask;
}

/*
 * Whether @addr is somewhere the BAR can decode. All writable bits set is a
 * sizing probe in progress, not an address to claim.
 */
static bool bar_address_valid(const PciBar *bar, uint64_t addr, uint64_t writable)
{
    uint64_t limit = bar->flags & PCI_BAR_IO ? 0x10000 : bar->flags & PCI_BAR_MEM64 ? 0 : 1ULL << 32;
    if (addr == 0 || addr == writable || addr + bar->size < addr) {
        return false;
    }
    return limit == 0 || addr + bar->size <= limit;
}

static IoMap *bar_map(const PciDevice *dev, const PciBar *bar)
{
    return bar->flags & PCI_BAR_IO ? dev->bus->machine->pio : dev->bus->machine->mmio;
}

static void bar_unmap(PciDevice *dev, unsigned index)
{
    PciBar *bar = &dev->bars[index];
    if (bar->mapped_at == PCI_BAR_UNMAPPED) {
        return;
    }
    uint64_t addr = bar->mapped_at;
    io_map_remove(bar_map(dev, bar), addr);
    bar->mapped_at = PCI_BAR_UNMAPPED;
    if (dev->ops && dev->ops->bar_mapped) {
        dev->ops->bar_mapped(dev, index, addr, false);
    }
}

/* Map, move or unmap every BAR after a change of command or BAR registers. */
static void update_mappings(PciDevice *dev)
{
    uint16_t cmd = pci_get_word(dev->config + PCI_COMMAND);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        PciBar *bar = &dev->bars[i];
        if (!bar->size) {
            continue;
        }
        uint64_t writable, addr = bar_programmed(dev, i, &writable);
        bool enabled = cmd & (bar->flags & PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY);
        uint64_t want = enabled && bar_address_valid(bar, addr, writable) ? addr : PCI_BAR_UNMAPPED;
        if (want == bar->mapped_at) {
            continue;
        }
        bar_unmap(dev, i);
        if (want == PCI_BAR_UNMAPPED) {
            continue;
        }
        g_autofree char *name = g_strdup_printf("%s BAR%u", dev->name, i);
        g_autoptr(GError) err = NULL;
        if (!io_map_add(bar_map(dev, bar), want, bar->size, bar->ops, bar->opaque, name, &err)) {
            /* A guest that overlaps BARs gets no decode there, as on a real bus. */
            if (!bar->refusal_logged) {
                g_warning("%s: not mapping: %s", dev->name, err->message);
                bar->refusal_logged = true;
            }
            continue;
        }
        bar->mapped_at = want;
        if (dev->ops && dev->ops->bar_mapped) {
            dev->ops->bar_mapped(dev, i, want, true);
        }
    }
}

void pci_device_add_bar(PciDevice *dev, unsigned index, uint64_t size, unsigned flags,
                        const IoRegionOps *ops, void *opaque)
{
    unsigned kind = flags & (PCI_BAR_IO | PCI_BAR_MEM32 | PCI_BAR_MEM64);
    bool is64 = kind == PCI_BAR_MEM64;
    g_assert(kind == PCI_BAR_IO || kind == PCI_BAR_MEM32 || kind == PCI_BAR_MEM64);
    g_assert(!(kind == PCI_BAR_IO && (flags & PCI_BAR_PREFETCH)));
    g_assert(index + is64 < PCI_NUM_BARS && ops);
    g_assert(size && (size & (size - 1)) == 0 && size >= (kind == PCI_BAR_IO ? 4u : 16u));
    g_assert(kind != PCI_BAR_IO || size <= 0x10000);
    g_assert(is64 || size <= 1ULL << 31);
    g_assert(!dev->bars[index].size && (!is64 || !dev->bars[index + 1].size));
    if (index > 0) {
        g_assert(!(dev->bars[index - 1].flags & PCI_BAR_MEM64)); /* not the upper half of one */
    }

    dev->bars[index] = (PciBar){ size, flags, ops, opaque, PCI_BAR_UNMAPPED, false };
    /* Low bits say what the BAR is (read-only); the address bits above the size are writable. */
    uint32_t type = kind == PCI_BAR_IO ? 0x1 : (is64 ? 0x4 : 0x0) | (flags & PCI_BAR_PREFETCH ? 0x8 : 0);
    uint64_t mask = ~(size - 1) & (kind == PCI_BAR_IO ? ~3ULL : ~15ULL);
    pci_set_long(dev->config + bar_reg(index), type);
    pci_set_long(dev->wmask + bar_reg(index), mask);
    if (is64) {
        pci_set_long(dev->config + bar_reg(index + 1), 0);
        pci_set_long(dev->wmask + bar_reg(index + 1), mask >> 32);
    }
}

uint64_t pci_device_bar_address(const PciDevice *dev, unsigned index)
{
    g_assert(index < PCI_NUM_BARS);
    return dev->bars[index].mapped_at;
}

/* ---- capabilities ---- */

unsigned pci_add_capability(PciDevice *dev, uint8_t id, unsigned size)
{
    g_assert(size >= 2);
    unsigned off = dev->cap_end;
    g_assert(off + size <= PCI_CONFIG_SIZE); /* the list lives in the first 256 bytes */
    dev->config[off] = id;
    dev->config[off + 1] = 0;
    if (dev->cap_last) {
        dev->config[dev->cap_last + 1] = off;
    } else {
        dev->config[PCI_CAPABILITY_LIST] = off;
        uint16_t status = pci_get_word(dev->config + PCI_STATUS);
        pci_set_word(dev->config + PCI_STATUS, status | PCI_STATUS_CAP_LIST);
    }
    dev->cap_last = off;
    dev->cap_end = (off + size + 3) & ~3u; /* capabilities are dword aligned */
    return off;
}

/* ---- configuration space ---- */

/* Registers every type 0 function lets a guest change. */
static void set_common_masks(PciDevice *dev)
{
    pci_set_word(dev->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                               PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                               PCI_COMMAND_INTX_DISABLE);
    pci_set_word(dev->w1cmask + PCI_STATUS, PCI_STATUS_W1C);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    dev->wmask[PCI_LATENCY_TIMER] = 0xff;
    dev->wmask[PCI_INTERRUPT_LINE] = 0xff; /* informational: the _PRT decides */
}

bool pci_device_init(PciDevice *dev, PciBus *bus, uint8_t devfn, const PciDeviceInfo *info,
                     const PciDeviceOps *ops, const char *name, GError **err)
{
    g_assert(info->intx_pin <= 4);
    if (bus->devices[devfn]) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: PCI address %02x.%x is taken by %s", name,
                    devfn >> 3, devfn & 7, bus->devices[devfn]->name);
        return false;
    }
    dev->bus = bus;
    dev->ops = ops;
    dev->name = g_strdup(name);
    dev->devfn = devfn;
    dev->config_size = info->extended ? PCI_EXT_CONFIG_SIZE : PCI_CONFIG_SIZE;
    dev->config = g_malloc0(dev->config_size);
    dev->wmask = g_malloc0(dev->config_size);
    dev->w1cmask = g_malloc0(dev->config_size);
    dev->cap_end = PCI_CAP_START;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        dev->bars[i].mapped_at = PCI_BAR_UNMAPPED;
    }

    uint8_t *c = dev->config;
    pci_set_word(c + PCI_VENDOR_ID, info->vendor);
    pci_set_word(c + PCI_DEVICE_ID, info->device);
    pci_set_word(c + PCI_STATUS, PCI_STATUS_DEVSEL_MEDIUM);
    c[PCI_REVISION_ID] = info->revision;
    c[PCI_CLASS_PROG] = info->class_code;
    pci_set_word(c + PCI_CLASS_PROG + 1, info->class_code >> 8);
    c[PCI_HEADER_TYPE] = info->header_type;
    pci_set_word(c + PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor);
    pci_set_word(c + PCI_SUBSYSTEM_ID, info->subsystem);
    c[PCI_INTERRUPT_PIN] = info->intx_pin;
    set_common_masks(dev);
    bus->devices[devfn] = dev;
    return true;
}

void pci_device_cleanup(PciDevice *dev)
{
    if (!dev->bus) {
        return;
    }
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        bar_unmap(dev, i);
    }
    dev->intx_level = false;
    update_intx(dev);
    dev->bus->devices[dev->devfn] = NULL;
    dev->bus = NULL;
    g_clear_pointer(&dev->config, g_free);
    g_clear_pointer(&dev->wmask, g_free);
    g_clear_pointer(&dev->w1cmask, g_free);
    g_clear_pointer(&dev->name, g_free);
}

/*
 * Power-on state: everything a guest can change is zero (decoding off, BARs
 * unassigned, errors clear); identity and capabilities stay.
 */
static void device_reset(PciDevice *dev)
{
    for (unsigned i = 0; i < dev->config_size; i++) {
        dev->config[i] &= ~(dev->wmask[i] | dev->w1cmask[i]);
    }
    update_mappings(dev);
    pci_set_irq(dev, false);
    if (dev->ops && dev->ops->reset) {
        dev->ops->reset(dev);
    }
}

void pci_bus_reset(PciBus *bus)
{
    for (unsigned i = 0; i < NR_DEVFNS; i++) {
        if (bus->devices[i]) {
            device_reset(bus->devices[i]);
        }
    }
}

uint32_t pci_bus_config_read(PciBus *bus, uint8_t devfn, unsigned reg, unsigned size)
{
    g_assert(size == 1 || size == 2 || size == 4);
    PciDevice *dev = bus->devices[devfn];
    uint32_t ones = size == 4 ? UINT32_MAX : (1u << (8 * size)) - 1;
    if (!dev || reg + size > dev->config_size) {
        return ones;
    }
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        v |= (uint32_t)dev->config[reg + i] << (8 * i);
    }
    if (dev->ops && dev->ops->config_read) {
        v = dev->ops->config_read(dev, reg, size, v) & ones;
    }
    return v;
}

static bool overlaps(unsigned reg, unsigned size, unsigned start, unsigned len)
{
    return reg < start + len && start < reg + size;
}

void pci_bus_config_write(PciBus *bus, uint8_t devfn, unsigned reg, uint32_t value, unsigned size)
{
    g_assert(size == 1 || size == 2 || size == 4);
    PciDevice *dev = bus->devices[devfn];
    if (!dev || reg + size > dev->config_size) {
        return;
    }
    for (unsigned i = 0; i < size; i++) {
        uint8_t b = value >> (8 * i), w = dev->wmask[reg + i], w1c = dev->w1cmask[reg + i];
        uint8_t *c = &dev->config[reg + i];
        *c = ((*c & ~w) | (b & w)) & ~(b & w1c);
    }
    if (overlaps(reg, size, PCI_COMMAND, 2)) {
        update_intx(dev);
    }
    if (overlaps(reg, size, PCI_COMMAND, 2) || overlaps(reg, size, PCI_BAR0, 4 * PCI_NUM_BARS)) {
        update_mappings(dev);
    }
    if (dev->ops && dev->ops->config_write) {
        dev->ops->config_write(dev, reg, value, size);
    }
}

Machine *pci_device_machine(const PciDevice *dev)
{
    return dev->bus->machine;
}

/* ---- migration ---- */

char *pci_device_state_id(const PciDevice *dev, const char *model)
{
    return g_strdup_printf("00:%02x.%x/%s", dev->devfn >> 3, dev->devfn & 7, model);
}

static bool pci_pre_save(void *opaque, GError **err)
{
    PciDevice *dev = opaque;
    if (dev->config_size != PCI_CONFIG_SIZE) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "%s: migrating an extended (PCI Express) configuration space is not supported", dev->name);
        return false;
    }
    memcpy(dev->mig_config, dev->config, PCI_CONFIG_SIZE);
    return true;
}

/* Bits the device itself changes although the guest cannot write them: INTx status, if it has a pin. */
static uint8_t device_owned(const PciDevice *dev, unsigned reg)
{
    return reg == PCI_STATUS && dev->config[PCI_INTERRUPT_PIN] ? PCI_STATUS_INTERRUPT : 0;
}

static bool pci_post_load(void *opaque, int version, GError **err)
{
    PciDevice *dev = opaque;
    const uint8_t *in = dev->mig_config;
    /* Check everything before changing anything: a refused stream leaves the function as it was. */
    for (unsigned i = 0; i < PCI_CONFIG_SIZE; i++) {
        uint8_t fixed = ~(dev->wmask[i] | dev->w1cmask[i] | device_owned(dev, i));
        if ((in[i] ^ dev->config[i]) & fixed) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "device state '%s', field config: read-only byte 0x%02x is 0x%02x in the stream, 0x%02x "
                        "here (not the same device)",
                        dev->name, i, in[i], dev->config[i]);
            return false;
        }
    }
    memcpy(dev->config, in, PCI_CONFIG_SIZE);
    update_mappings(dev);
    /* Drive INTx on the destination's bus as the source's device did. */
    pci_set_irq(dev, pci_get_word(dev->config + PCI_STATUS) & PCI_STATUS_INTERRUPT);
    return true;
}

static const VMStateField pci_fields[] = {
    VMSTATE_BUFFER(PciDevice, mig_config),
    VMSTATE_END,
};

const VMStateDescription pci_device_vmsd = {
    .name = "pci-device",
    .version = 1,
    .minimum_version = 1,
    .fields = pci_fields,
    .pre_save = pci_pre_save,
    .post_load = pci_post_load,
};

/* ---- ECAM ---- */

/* Offset bits 19:12 pick the function, 11:0 the register (bus 0 only). */
static uint64_t ecam_read(void *opaque, uint64_t offset, unsigned size)
{
    return pci_bus_config_read(opaque, offset >> 12, offset & 0xfff, size);
}

static void ecam_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    pci_bus_config_write(opaque, offset >> 12, offset & 0xfff, value, size);
}

static const IoRegionOps ecam_ops = {
    .read = ecam_read,
    .write = ecam_write,
    .min_size = 1,
    .max_size = 4,
};

bool pci_bus_map_ecam(PciBus *bus, uint64_t base, GError **err)
{
    g_assert(!bus->ecam_base && base && base % PCI_ECAM_BUS_SIZE == 0);
    if (!io_map_add(bus->machine->mmio, base, PCI_ECAM_BUS_SIZE, &ecam_ops, bus, "pci-ecam", err)) {
        return false;
    }
    bus->ecam_base = base;
    return true;
}

/* ---- resource assignment ---- */

typedef struct {
    PciDevice *dev;
    unsigned index;
} BarRef;

static gint by_size_desc(gconstpointer a, gconstpointer b)
{
    const BarRef *x = a, *y = b;
    uint64_t sx = x->dev->bars[x->index].size, sy = y->dev->bars[y->index].size;
    if (sx != sy) {
        return sx > sy ? -1 : 1;
    }
    return x->dev->devfn != y->dev->devfn ? x->dev->devfn - y->dev->devfn : (int)x->index - (int)y->index;
}

/* Next naturally aligned spot for @size at or after *@cursor, skipping ECAM. */
static bool place(PciBus *bus, uint64_t *cursor, uint64_t end, uint64_t size, uint64_t *addr)
{
    uint64_t a = (*cursor + size - 1) & ~(size - 1);
    if (bus->ecam_base && a < bus->ecam_base + PCI_ECAM_BUS_SIZE && bus->ecam_base < a + size) {
        uint64_t after = bus->ecam_base + PCI_ECAM_BUS_SIZE;
        a = (after + size - 1) & ~(size - 1);
    }
    if (a < *cursor || a + size < a || a + size > end) {
        return false;
    }
    *addr = a;
    *cursor = a + size;
    return true;
}

bool pci_bus_assign_resources(PciBus *bus, GError **err)
{
    g_autoptr(GArray) bars = g_array_new(FALSE, FALSE, sizeof(BarRef));
    for (unsigned d = 0; d < NR_DEVFNS; d++) {
        PciDevice *dev = bus->devices[d];
        for (unsigned i = 0; dev && i < PCI_NUM_BARS; i++) {
            if (dev->bars[i].size) {
                BarRef r = { dev, i };
                g_array_append_val(bars, r);
            }
        }
    }
    /* Largest first keeps natural alignment from wasting space. */
    g_array_sort(bars, by_size_desc);

    uint64_t io = bus->cfg.io_start, mmio32 = bus->cfg.mmio32_start, mmio64 = bus->cfg.mmio64_start;
    for (guint n = 0; n < bars->len; n++) {
        BarRef *r = &g_array_index(bars, BarRef, n);
        PciDevice *dev = r->dev;
        PciBar *bar = &dev->bars[r->index];
        uint64_t addr = 0;
        bool ok;
        if (bar->flags & PCI_BAR_IO) {
            ok = place(bus, &io, bus->cfg.io_end, bar->size, &addr);
        } else if (bar->flags & PCI_BAR_MEM64) {
            ok = place(bus, &mmio64, bus->cfg.mmio64_end, bar->size, &addr);
        } else {
            ok = place(bus, &mmio32, bus->cfg.mmio32_end, bar->size, &addr);
        }
        if (!ok) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "%s: BAR%u (%" G_GUINT64_FORMAT " bytes) does not fit in the PCI %s window", dev->name,
                        r->index, bar->size,
                        bar->flags & PCI_BAR_IO ? "I/O" : bar->flags & PCI_BAR_MEM64 ? "64-bit MMIO" : "32-bit MMIO");
            return false;
        }
        uint8_t *c = dev->config + bar_reg(r->index);
        uint32_t type_bits = pci_get_long(c) & ~pci_get_long(dev->wmask + bar_reg(r->index));
        pci_set_long(c, type_bits | (uint32_t)addr);
        if (bar->flags & PCI_BAR_MEM64) {
            pci_set_long(c + 4, addr >> 32);
        }
        uint16_t cmd = pci_get_word(dev->config + PCI_COMMAND);
        cmd |= bar->flags & PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
        pci_set_word(dev->config + PCI_COMMAND, cmd);
    }
    for (unsigned d = 0; d < NR_DEVFNS; d++) {
        if (bus->devices[d]) {
            update_mappings(bus->devices[d]);
        }
    }
    return true;
}
