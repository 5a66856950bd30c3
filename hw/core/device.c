/* -device: the model table and the generic part of creating one. */
#include "hw/core/device.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio-blk.h"
#include "hw/virtio/virtio-net.h"
#include "hw/virtio/virtio-rng.h"
#include "hw/virtio/virtio-serial.h"
#include <string.h>

const DeviceType *const device_types[] = {
    &virtio_blk_pci_type,
    &virtio_net_pci_type,
    &virtio_serial_pci_device,
    &virtconsole_device,
    &virtio_rng_pci_device,
    NULL,
};

const DeviceType *device_type_find(const char *name)
{
    for (size_t i = 0; device_types[i]; i++) {
        if (strcmp(device_types[i]->name, name) == 0) {
            return device_types[i];
        }
    }
    return NULL;
}

/* QEMU's addr=SLOT[.FN] (hex); without it the first free slot from 2 on, as QEMU's pc leaves 1 for its ISA bridge. */
static bool pci_devfn(const DeviceContext *ctx, const VmOpt *opt, uint8_t *devfn, GError **err)
{
    const char *addr = vm_opt_get(opt, "addr");
    const char *bus = vm_opt_get(opt, "bus");
    if (bus && strcmp(bus, "pci.0") != 0) {
        return vm_opt_error(opt, err, "bus '%s' not found (the only PCI bus is pci.0)", bus);
    }
    if (!addr) {
        for (unsigned slot = 2; slot < PCI_SLOTS; slot++) {
            if (!pci_bus_device(ctx->pci, PCI_DEVFN(slot, 0))) {
                *devfn = PCI_DEVFN(slot, 0);
                return true;
            }
        }
        return vm_opt_error(opt, err, "no free PCI slot");
    }
    char *end;
    unsigned long slot = strtoul(addr, &end, 16), fn = 0;
    if (end != addr && *end == '.') {
        const char *f = end + 1;
        fn = strtoul(f, &end, 16);
        if (end == f) {
            end = (char *)f - 1;
        }
    }
    if (end == addr || *end || slot >= PCI_SLOTS || fn >= PCI_FUNCTIONS) {
        return vm_opt_error(opt, err, "addr=%s: expected SLOT[.FUNCTION] in hex, slot below 0x20, function below 8",
                            addr);
    }
    if (pci_bus_device(ctx->pci, PCI_DEVFN(slot, fn))) {
        return vm_opt_error(opt, err, "addr=%s: slot %02lx.%lx is in use", addr, slot, fn);
    }
    *devfn = PCI_DEVFN(slot, fn);
    return true;
}

bool device_create(DeviceContext *ctx, const VmOpt *opt, GError **err)
{
    const char *driver = vm_opt_get(opt, "driver");
    if (!driver || !*driver) {
        return vm_opt_error(opt, err, "no device model given");
    }
    const DeviceType *type = device_type_find(driver);
    if (!type) {
        g_autoptr(GString) known = g_string_new(NULL);
        for (size_t i = 0; device_types[i]; i++) {
            g_string_append_printf(known, "%s%s", i ? ", " : "", device_types[i]->name);
        }
        return vm_opt_error(opt, err, "device model '%s' not found (Vireo has: %s)", driver, known->str);
    }
    g_autoptr(GPtrArray) keys = g_ptr_array_new();
    g_ptr_array_add(keys, "driver");
    g_ptr_array_add(keys, "id");
    if (type->pci) {
        g_ptr_array_add(keys, "addr");
        g_ptr_array_add(keys, "bus");
    }
    for (size_t i = 0; type->props && type->props[i]; i++) {
        g_ptr_array_add(keys, (gpointer)type->props[i]);
    }
    g_ptr_array_add(keys, NULL);
    if (!vm_opt_check_keys(opt, (const char *const *)keys->pdata, err)) {
        return false;
    }
    const char *id = vm_opt_get(opt, "id");
    for (guint i = 0; id && i < ctx->created->len; i++) {
        const DeviceInstance *d = ctx->created->pdata[i];
        if (g_strcmp0(d->id, id) == 0) {
            return vm_opt_error(opt, err, "duplicate device id '%s'", id);
        }
    }
    uint8_t devfn = 0;
    if (type->pci && !pci_devfn(ctx, opt, &devfn, err)) {
        return false;
    }
    void *dev = type->create(ctx, opt, devfn, err);
    if (!dev) {
        return false;
    }
    DeviceInstance *inst = g_new0(DeviceInstance, 1);
    inst->type = type;
    inst->id = g_strdup(id);
    inst->dev = dev;
    g_ptr_array_add(ctx->created, inst);
    return true;
}

bool device_create_all(DeviceContext *ctx, GPtrArray *opts, GError **err)
{
    for (guint i = 0; i < opts->len; i++) {
        if (!device_create(ctx, opts->pdata[i], err)) {
            return false;
        }
    }
    return true;
}

void device_destroy_all(GPtrArray *created)
{
    while (created->len > 0) {
        DeviceInstance *d = g_ptr_array_steal_index(created, created->len - 1);
        d->type->destroy(d->dev);
        g_free(d->id);
        g_free(d);
    }
}

DeviceInstance *device_find_last(const DeviceContext *ctx, const char *name)
{
    for (guint i = ctx->created->len; i-- > 0;) {
        DeviceInstance *d = ctx->created->pdata[i];
        if (strcmp(d->type->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}
