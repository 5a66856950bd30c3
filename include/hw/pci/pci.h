/*
 * PCI bus core: one bus (bus 0) of up to 32 devices x 8 functions, each
 * function a PciDevice with a conventional (256-byte) or extended (4 KiB)
 * configuration space. The core implements the parts every function shares:
 * read-only/writable/write-1-to-clear bits, BAR sizing and mapping into the
 * machine's port or MMIO map, the capability list, INTx routing and the
 * configuration accesses of mechanism #1 and ECAM (which their owners route
 * here). A device embeds PciDevice and gets back to itself with container_of.
 */
#pragma once
#include "hw/core/irq.h"
#include "hw/core/machine.h"
#include "util/container-of.h"

#define PCI_SLOTS 32
#define PCI_FUNCTIONS 8
#define PCI_DEVFN(slot, fn) ((uint8_t)((slot) << 3 | (fn)))
#define PCI_CONFIG_SIZE 256
#define PCI_EXT_CONFIG_SIZE 4096
#define PCI_NUM_BARS 6
/* ECAM covers 4 KiB per function: 1 MiB per bus. */
#define PCI_ECAM_BUS_SIZE (1u << 20)
/* PCI INTx lines land on IOAPIC pins 16..23, as the DSDT's _PRT says. */
#define PCI_INTX_FIRST_GSI 16
#define PCI_INTX_GSIS 8

/* Type 0 header registers. */
enum {
    PCI_VENDOR_ID = 0x00,
    PCI_DEVICE_ID = 0x02,
    PCI_COMMAND = 0x04,
    PCI_STATUS = 0x06,
    PCI_REVISION_ID = 0x08,
    PCI_CLASS_PROG = 0x09,
    PCI_CACHE_LINE_SIZE = 0x0c,
    PCI_LATENCY_TIMER = 0x0d,
    PCI_HEADER_TYPE = 0x0e,
    PCI_BAR0 = 0x10,
    PCI_SUBSYSTEM_VENDOR_ID = 0x2c,
    PCI_SUBSYSTEM_ID = 0x2e,
    PCI_CAPABILITY_LIST = 0x34,
    PCI_INTERRUPT_LINE = 0x3c,
    PCI_INTERRUPT_PIN = 0x3d,
    PCI_CAP_START = 0x40, /* first byte after the type 0 header */
};

enum {
    PCI_COMMAND_IO = 1 << 0,
    PCI_COMMAND_MEMORY = 1 << 1,
    PCI_COMMAND_MASTER = 1 << 2,
    PCI_COMMAND_PARITY = 1 << 6,
    PCI_COMMAND_SERR = 1 << 8,
    PCI_COMMAND_INTX_DISABLE = 1 << 10,
};

enum {
    PCI_STATUS_INTERRUPT = 1 << 3,
    PCI_STATUS_CAP_LIST = 1 << 4,
    PCI_STATUS_DEVSEL_MEDIUM = 1 << 9,
    /* Error bits a guest clears by writing 1: parity, aborts, SERR. */
    PCI_STATUS_W1C = 0xf900,
};

enum { PCI_HEADER_MULTI_FUNCTION = 0x80 };

typedef enum {
    PCI_BAR_IO = 1 << 0,
    PCI_BAR_MEM32 = 1 << 1,
    PCI_BAR_MEM64 = 1 << 2, /* takes BAR index and index + 1 */
    PCI_BAR_PREFETCH = 1 << 3,
} PciBarFlags;

#define PCI_BAR_UNMAPPED UINT64_MAX

typedef struct PciBus PciBus;
typedef struct PciDevice PciDevice;

/* What a device family adds to the common behaviour; every hook optional. */
typedef struct PciDeviceOps {
    /* Adjust what a config read returns; @value is the stored bytes. */
    uint32_t (*config_read)(PciDevice *dev, unsigned reg, unsigned size, uint32_t value);
    /* Called after the masked write has been stored; @value is the guest's. */
    void (*config_write)(PciDevice *dev, unsigned reg, uint32_t value, unsigned size);
    /* Device state back to power-on; the core has reset the config space. */
    void (*reset)(PciDevice *dev);
    /* A BAR was mapped at @addr, or unmapped from it. */
    void (*bar_mapped)(PciDevice *dev, unsigned index, uint64_t addr, bool mapped);
} PciDeviceOps;

/* The read-only identity of a function. */
typedef struct PciDeviceInfo {
    uint16_t vendor, device;
    uint16_t subsystem_vendor, subsystem;
    uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
    uint8_t revision;
    uint8_t header_type; /* 0, or PCI_HEADER_MULTI_FUNCTION on function 0 */
    uint8_t intx_pin;    /* 0: none, 1..4: INTA..INTD */
    bool extended;       /* 4 KiB config space (PCI Express) */
} PciDeviceInfo;

typedef struct PciBar {
    uint64_t size; /* 0: not implemented */
    unsigned flags;
    const IoRegionOps *ops;
    void *opaque;
    uint64_t mapped_at; /* PCI_BAR_UNMAPPED if not in the IoMap */
    bool refusal_logged;
} PciBar;

struct PciDevice {
    PciBus *bus;
    const PciDeviceOps *ops;
    char *name;
    uint8_t devfn;
    unsigned config_size;
    uint8_t *config; /* what the guest reads */
    uint8_t *wmask;  /* bits a guest write changes */
    uint8_t *w1cmask; /* bits a guest write of 1 clears */
    PciBar bars[PCI_NUM_BARS];
    unsigned cap_end; /* next free byte for pci_add_capability() */
    uint8_t cap_last; /* offset of the last capability, 0 if none */
    bool intx_level;  /* what the device drives, before INTX_DISABLE */
    bool intx_asserted; /* what the bus has counted */
    /* The configuration space as migrated: checked against ours before it is applied. */
    uint8_t mig_config[PCI_CONFIG_SIZE];
};

typedef struct VMStateDescription VMStateDescription;
/*
 * A function's configuration space, for nesting in its device's state
 * (VMSTATE_STRUCT of the embedded PciDevice). Loading refuses a function
 * whose identity or read-only bits differ, then maps the BARs where the
 * guest programmed them and drives INTx as the status register says.
 */
extern const VMStateDescription pci_device_vmsd;
/* "BB:DD.F/@model", the section id of a function's state. */
char *pci_device_state_id(const PciDevice *dev, const char *model);

/*
 * Where pci_bus_assign_resources() may place BARs: [start, end) per kind; an
 * empty range means none of that kind.
 */
typedef struct PciBusConfig {
    IrqLine intx; /* set_level/opaque receive a GSI as the line */
    uint64_t io_start, io_end;
    uint64_t mmio32_start, mmio32_end;
    uint64_t mmio64_start, mmio64_end;
} PciBusConfig;

PciBus *pci_bus_new(Machine *m, const PciBusConfig *cfg);
/* The devices must have been cleaned up first. */
void pci_bus_free(PciBus *bus);
/* Claim ECAM for this bus at @base (PCI_ECAM_BUS_SIZE bytes of MMIO). */
bool pci_bus_map_ecam(PciBus *bus, uint64_t base, GError **err);
/* Every function back to power-on: decoding off, BARs unassigned. */
void pci_bus_reset(PciBus *bus);
/*
 * Give every BAR an address in the windows (naturally aligned, IO from
 * io_start up, and so on), enable decoding and map them, as firmware would.
 * Fails naming the BAR that does not fit.
 */
bool pci_bus_assign_resources(PciBus *bus, GError **err);
PciDevice *pci_bus_device(PciBus *bus, uint8_t devfn);
/* A configuration access; absent functions read all ones. */
uint32_t pci_bus_config_read(PciBus *bus, uint8_t devfn, unsigned reg, unsigned size);
void pci_bus_config_write(PciBus *bus, uint8_t devfn, unsigned reg, uint32_t value, unsigned size);

/* Put @dev (zeroed by the caller) at @devfn; fails if the slot is taken. */
bool pci_device_init(PciDevice *dev, PciBus *bus, uint8_t devfn, const PciDeviceInfo *info,
                     const PciDeviceOps *ops, const char *name, GError **err);
/* Unmap, deassert and leave the bus. */
void pci_device_cleanup(PciDevice *dev);
/*
 * Declare BAR @index: @size a power of two (at least 4 for IO, 16 for
 * memory), @flags one of IO/MEM32/MEM64 plus optionally PREFETCH. @ops serve
 * the region once the guest (or pci_bus_assign_resources) maps it.
 */
void pci_device_add_bar(PciDevice *dev, unsigned index, uint64_t size, unsigned flags,
                        const IoRegionOps *ops, void *opaque);
/* Where BAR @index is mapped now, or PCI_BAR_UNMAPPED. */
uint64_t pci_device_bar_address(const PciDevice *dev, unsigned index);
/*
 * Append a capability of @size bytes (id and next pointer included) to the
 * list and return its offset; its body is read-only until the caller sets
 * dev->wmask for it.
 */
unsigned pci_add_capability(PciDevice *dev, uint8_t id, unsigned size);
/* Drive INTx; the line is shared, so the GSI is asserted while any device holds it. */
void pci_set_irq(PciDevice *dev, bool level);
/* The machine the function's bus belongs to. */
Machine *pci_device_machine(const PciDevice *dev);
/* The GSI the _PRT routes this function's INTx pin to. */
unsigned pci_device_gsi(const PciDevice *dev);

static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    pci_set_word(p, v);
    pci_set_word(p + 2, v >> 16);
}

static inline uint16_t pci_get_word(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static inline uint32_t pci_get_long(const uint8_t *p)
{
    return pci_get_word(p) | (uint32_t)pci_get_word(p + 2) << 16;
}
