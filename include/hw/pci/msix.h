/*
 * MSI-X for a PCI function: the capability, the vector table and the
 * pending-bit array in a BAR of their own, and delivery through the
 * machine's fast path. Each vector has an eventfd: writing it (any thread,
 * msix_notify) raises the vector. While the vector is live the eventfd is
 * bound to its message in the kernel (irqfd), so nothing in userspace runs;
 * while it is masked the main loop latches writes into the pending bit and
 * delivers them at unmask.
 */
#pragma once
#include "hw/pci/pci.h"

#define MSIX_MAX_VECTORS 128
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_BAR_SIZE 4096

typedef struct PciMsix PciMsix;

/* Add the capability with @nvectors (1..MSIX_MAX_VECTORS) and declare BAR @bar for the table and PBA. */
PciMsix *msix_new(PciDevice *dev, unsigned nvectors, unsigned bar);
void msix_free(PciMsix *msix);
/* Forward every config write of the function here (after the core stored it). */
void msix_config_write(PciMsix *msix, unsigned reg, unsigned size);
/* Back to power-on: disabled, every vector masked and unbound. */
void msix_reset(PciMsix *msix);
bool msix_enabled(PciMsix *msix);
unsigned msix_nvectors(PciMsix *msix);
/* Raise @vector; any thread. Out-of-range vectors are ignored. */
void msix_notify(PciMsix *msix, unsigned vector);

typedef struct VMStateDescription VMStateDescription;
/*
 * The vector table and pending bits (opaque: the PciMsix). Load it after
 * the function's configuration space (the enable bits live there): it binds
 * every live vector again and latches the masked ones.
 */
extern const VMStateDescription msix_vmsd;
