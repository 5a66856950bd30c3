/*
 * The PC's PCI host: configuration mechanism #1 at ports 0xCF8/0xCFC, the
 * i440FX host bridge at 00.0 and the PIIX3-compatible ISA bridge at 01.0,
 * and the reset control register at 0xCF9 (the FADT's reset register).
 * PCI devices proper arrive with the virtio work.
 */
#pragma once
#include "hw/core/machine.h"

typedef struct PciHost PciHost;

PciHost *pci_host_new(Machine *m, GError **err);
void pci_host_free(PciHost *host);
void pci_host_reset(PciHost *host);
