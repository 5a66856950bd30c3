#define G_LOG_DOMAIN "pci"
#include "hw/pci/pci-host.h"
#include "migration/vmstate.h"

#define CONFIG_ADDRESS_ENABLE 0x80000000u
#define RCR_SYS_RST 0x02 /* with RST: a full reset rather than a CPU-only one */
#define RCR_RST_CPU 0x04

struct PciHost {
    Machine *machine;
    PciBus *bus;
    PciDevice host_bridge, isa_bridge;
    uint32_t config_address;
    uint8_t rcr;
};

/* The functions on bus 0 a PC always has. */
static const PciDeviceInfo i440fx_info = {
    .vendor = 0x8086, .device = 0x1237, .class_code = 0x060000, .revision = 0x02,
};
/* Multi-function, as the PIIX3 also carries IDE and USB functions. */
static const PciDeviceInfo piix3_info = {
    .vendor = 0x8086, .device = 0x7000, .class_code = 0x060100,
    .header_type = PCI_HEADER_MULTI_FUNCTION,
};

/* A host bridge decodes memory and masters from power-on; nothing else does. */
static void bridge_reset(PciDevice *dev)
{
    pci_set_word(dev->config + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static const PciDeviceOps bridge_ops = {
    .reset = bridge_reset,
};

void pci_host_reset(PciHost *h)
{
    h->config_address = 0;
    h->rcr = 0;
    pci_bus_reset(h->bus);
    /* Vireo plays firmware: the BARs that fitted at start fit again. */
    g_autoptr(GError) err = NULL;
    if (!pci_bus_assign_resources(h->bus, &err)) {
        g_warning("reset: %s", err->message);
    }
}

PciBus *pci_host_bus(PciHost *h)
{
    return h->bus;
}

/* The function and register CONFIG_ADDRESS selects, or false for none of ours. */
static bool decode(PciHost *h, uint64_t offset, uint8_t *devfn, unsigned *reg)
{
    uint32_t a = h->config_address;
    if (!(a & CONFIG_ADDRESS_ENABLE) || ((a >> 16) & 0xff) != 0) {
        return false;
    }
    *devfn = (a >> 8) & 0xff;
    *reg = (a & 0xfc) + (offset - 4);
    return true;
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
    uint8_t devfn;
    unsigned reg;
    if (offset < 4 || !decode(h, offset, &devfn, &reg)) {
        return ~0ULL;
    }
    return pci_bus_config_read(h->bus, devfn, reg, size);
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
    uint8_t devfn;
    unsigned reg;
    if (offset >= 4 && decode(h, offset, &devfn, &reg)) {
        pci_bus_config_write(h->bus, devfn, reg, value, size);
    }
}

static const IoRegionOps pci_host_ops = {
    .read = pci_host_read,
    .write = pci_host_write,
    .min_size = 1,
    .max_size = 4,
};

/* The bridges' configuration and the 0xcf8 latch; each other function has a section of its own. */
static const VMStateField pci_host_fields[] = {
    VMSTATE_UINT32(PciHost, config_address),
    VMSTATE_UINT8(PciHost, rcr),
    VMSTATE_STRUCT(PciHost, host_bridge, pci_device_vmsd, PciDevice),
    VMSTATE_STRUCT(PciHost, isa_bridge, pci_device_vmsd, PciDevice),
    VMSTATE_END,
};

static const VMStateDescription pci_host_vmsd = {
    .name = "pci-host",
    .version = 1,
    .minimum_version = 1,
    .fields = pci_host_fields,
};

PciHost *pci_host_new(Machine *m, const PciBusConfig *bus_cfg, uint64_t ecam_base, GError **err)
{
    PciHost *h = g_new0(PciHost, 1);
    h->machine = m;
    h->bus = pci_bus_new(m, bus_cfg);
    if (!pci_device_init(&h->host_bridge, h->bus, PCI_DEVFN(0, 0), &i440fx_info, &bridge_ops, "i440fx", err) ||
        !pci_device_init(&h->isa_bridge, h->bus, PCI_DEVFN(1, 0), &piix3_info, NULL, "piix3", err) ||
        (ecam_base && !pci_bus_map_ecam(h->bus, ecam_base, err)) ||
        !io_map_add(m->pio, 0xcf8, 8, &pci_host_ops, h, "pci-host", err)) {
        pci_device_cleanup(&h->isa_bridge);
        pci_device_cleanup(&h->host_bridge);
        pci_bus_free(h->bus);
        g_free(h);
        return NULL;
    }
    pci_host_reset(h);
    vmstate_register(m, "pci-host", 0, &pci_host_vmsd, h);
    return h;
}

void pci_host_free(PciHost *h)
{
    if (h) {
        vmstate_unregister(h->machine, h);
        io_map_remove(h->machine->pio, 0xcf8);
        pci_device_cleanup(&h->isa_bridge);
        pci_device_cleanup(&h->host_bridge);
        pci_bus_free(h->bus);
        g_free(h);
    }
}
