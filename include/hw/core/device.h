/*
 * -device: one table row per device model. A machine builds its fixed
 * devices itself and then hands every -device (and the devices that -drive
 * if=virtio and -nic imply) to device_create_all(), which finds the row,
 * checks the keys and calls the model's create hook. A model finds its
 * backend (drive=, netdev=, chardev=, rng=) in the VmConfig by id and opens
 * it; each backend serves one device.
 */
#pragma once
#include "hw/core/machine.h"
#include "system/options.h"

typedef struct PciBus PciBus;
typedef struct DeviceType DeviceType;

/* What a model may attach to. */
typedef struct DeviceContext {
    Machine *machine;
    PciBus *pci;
    const VmConfig *cfg;
    /* The devices created so far (DeviceInstance), e.g. for virtconsole to find its virtio-serial bus. */
    GPtrArray *created;
} DeviceContext;

typedef struct DeviceInstance {
    const DeviceType *type;
    char *id; /* id=, or NULL */
    void *dev;
} DeviceInstance;

struct DeviceType {
    const char *name; /* the -device driver name */
    const char *desc;
    /* Keys the model accepts besides driver, id and (for PCI) addr and bus. */
    const char *const *props;
    bool pci; /* takes addr= (slot[.fn]) and bus=pci.0 */
    /*
     * Create the device from @opt, whose keys have been checked. @devfn is
     * where a PCI device goes (from addr= or the next free slot). Errors
     * name the option with vm_opt_error().
     */
    void *(*create)(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err);
    void (*destroy)(void *dev);
};

/* The models this binary offers, NULL-terminated. */
extern const DeviceType *const device_types[];
const DeviceType *device_type_find(const char *name);

/*
 * Create every device of @opts (VmOpt with a "driver" key) in order and
 * append them to ctx->created. On failure the ones made so far stay in
 * ctx->created for device_destroy_all().
 */
bool device_create_all(DeviceContext *ctx, GPtrArray *opts, GError **err);
bool device_create(DeviceContext *ctx, const VmOpt *opt, GError **err);
/* Destroy the devices of @created, last first, and empty it. */
void device_destroy_all(GPtrArray *created);
/* The most recently created device of type @name, or NULL. */
DeviceInstance *device_find_last(const DeviceContext *ctx, const char *name);
