/*
 * The PC's PCI host: bus 0 with the i440FX host bridge at 00.0 and the
 * PIIX3-compatible ISA bridge at 01.0, configuration mechanism #1 at ports
 * 0xCF8/0xCFC, ECAM for bus 0, and the reset control register at 0xCF9 (the
 * FADT's reset register).
 */
#pragma once
#include "hw/core/machine.h"
#include "hw/pci/pci.h"

typedef struct PciHost PciHost;

/* @ecam_base: where ECAM for bus 0 goes (PCI_ECAM_BUS_SIZE bytes), 0 for none. */
PciHost *pci_host_new(Machine *m, const PciBusConfig *bus_cfg, uint64_t ecam_base, GError **err);
void pci_host_free(PciHost *host);
/* Power-on state, with BARs assigned again as Vireo's "firmware" does at start. */
void pci_host_reset(PciHost *host);
PciBus *pci_host_bus(PciHost *host);

/* Where the pc machine puts ECAM for bus 0; RAM below 4 GiB ends at or before it. */
#define PCI_HOST_ECAM_BASE 0xb0000000ULL
