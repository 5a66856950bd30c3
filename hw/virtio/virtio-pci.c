/*
 * The virtio PCI transport: see include/hw/virtio/virtio-pci.h.
 *
 * BAR 4 layout, one 4 KiB page per structure as the spec suggests so a
 * guest may map them separately: common config, ISR, device config, and
 * the notification area with one 4-byte slot per queue.
 */
#define G_LOG_DOMAIN "virtio"
#include "hw/virtio/virtio-pci.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci.h"
#include "migration/vmstate.h"
#include <glib-unix.h>
#include <linux/virtio_pci.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_SUBSYSTEM 0x1100
#define PCI_CAP_ID_VNDR 0x09

enum {
    MSIX_BAR = 1,
    VIRTIO_BAR = 4,
    COMMON_OFF = 0x0000,
    ISR_OFF = 0x1000,
    DEVICE_OFF = 0x2000,
    NOTIFY_OFF = 0x3000,
    REGION_SIZE = 0x1000,
    VIRTIO_BAR_SIZE = 0x4000,
    NOTIFY_MULTIPLIER = 4,
};

struct VirtioPci {
    PciDevice pci;
    VirtioDevice *vdev;
    PciMsix *msix;
    char *name;
    const char *model;      /* "virtio-blk-pci" */
    void *state_opaque;     /* the device's registered state, or NULL */
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    gint isr;
    int intx_fd; /* raises INTx from any thread, via the main loop */
    guint intx_watch;
    uint64_t notify_base; /* where the notification area is mapped, or PCI_BAR_UNMAPPED */
    bool *ioeventfd_on;   /* per queue */
    unsigned ioeventfd_len; /* 0 (any width) or 2 */
};

static VirtioPci *vp_of(PciDevice *dev)
{
    return container_of(dev, VirtioPci, pci);
}

/* ---- interrupts ---- */

static void transport_notify(VirtioDevice *vdev, uint16_t vector, uint8_t isr)
{
    VirtioPci *vp = vdev->transport_opaque;
    if (msix_enabled(vp->msix)) {
        if (vector != VIRTIO_NO_VECTOR) {
            msix_notify(vp->msix, vector);
        }
        return;
    }
    g_atomic_int_or(&vp->isr, isr);
    uint64_t one = 1;
    (void)!write(vp->intx_fd, &one, sizeof(one));
}

static const VirtioTransportOps transport_ops = {
    .notify = transport_notify,
};

static gboolean raise_intx(gint fd, GIOCondition cond, gpointer opaque)
{
    VirtioPci *vp = opaque;
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
    if (g_atomic_int_get(&vp->isr)) {
        pci_set_irq(&vp->pci, true);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- common configuration ---- */

static VirtQueue *selected(VirtioPci *vp)
{
    return virtio_queue(vp->vdev, vp->queue_select);
}

static uint32_t half(uint64_t v, bool hi)
{
    return hi ? v >> 32 : (uint32_t)v;
}

static void set_half(uint64_t *v, bool hi, uint32_t part)
{
    *v = hi ? (*v & 0xffffffffULL) | (uint64_t)part << 32 : (*v & ~0xffffffffULL) | part;
}

static uint64_t common_read(void *opaque, uint64_t offset, unsigned size)
{
    VirtioPci *vp = opaque;
    VirtioDevice *vdev = vp->vdev;
    VirtQueue *vq = selected(vp);
    VirtQueueConfig *q = vq ? virtqueue_config(vq) : NULL;
    switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        return vp->dfselect;
    case VIRTIO_PCI_COMMON_DF:
        return vp->dfselect < 2 ? half(vdev->host_features, vp->dfselect) : 0;
    case VIRTIO_PCI_COMMON_GFSELECT:
        return vp->gfselect;
    case VIRTIO_PCI_COMMON_GF:
        return vp->gfselect < 2 ? half(vdev->guest_features, vp->gfselect) : 0;
    case VIRTIO_PCI_COMMON_MSIX:
        return vdev->config_vector;
    case VIRTIO_PCI_COMMON_NUMQ:
        return vdev->nqueues;
    case VIRTIO_PCI_COMMON_STATUS:
        return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
    case VIRTIO_PCI_COMMON_CFGGENERATION:
        return (uint8_t)g_atomic_int_get(&vdev->config_generation);
    case VIRTIO_PCI_COMMON_Q_SELECT:
        return vp->queue_select;
    case VIRTIO_PCI_COMMON_Q_SIZE:
        return q ? q->size : 0;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        return q ? q->vector : VIRTIO_NO_VECTOR;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        return q && q->enabled;
    case VIRTIO_PCI_COMMON_Q_NOFF:
        return vq ? virtqueue_index(vq) : 0;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
        return q ? half(q->desc, offset == VIRTIO_PCI_COMMON_Q_DESCHI) : 0;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
        return q ? half(q->avail, offset == VIRTIO_PCI_COMMON_Q_AVAILHI) : 0;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        return q ? half(q->used, offset == VIRTIO_PCI_COMMON_Q_USEDHI) : 0;
    default:
        return 0;
    }
}

/* A vector the function does not have reads back as NO_VECTOR, which the driver checks. */
static uint16_t valid_vector(VirtioPci *vp, uint64_t v)
{
    return v < msix_nvectors(vp->msix) ? v : VIRTIO_NO_VECTOR;
}

static void common_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    VirtioPci *vp = opaque;
    VirtioDevice *vdev = vp->vdev;
    VirtQueue *vq = selected(vp);
    VirtQueueConfig *q = vq ? virtqueue_config(vq) : NULL;
    /* Queue layout is frozen while the queue is enabled. */
    VirtQueueConfig *qw = q && !q->enabled ? q : NULL;
    switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        vp->dfselect = value;
        break;
    case VIRTIO_PCI_COMMON_GFSELECT:
        vp->gfselect = value;
        break;
    case VIRTIO_PCI_COMMON_GF:
        if (vp->gfselect < 2 && !(vdev->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
            set_half(&vdev->guest_features, vp->gfselect, value);
        }
        break;
    case VIRTIO_PCI_COMMON_MSIX:
        vdev->config_vector = valid_vector(vp, value);
        break;
    case VIRTIO_PCI_COMMON_STATUS:
        virtio_device_set_status(vdev, value);
        if (value == 0) {
            g_atomic_int_set(&vp->isr, 0);
            pci_set_irq(&vp->pci, false);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        vp->queue_select = value;
        break;
    case VIRTIO_PCI_COMMON_Q_SIZE:
        if (qw) {
            qw->size = value;
        }
        break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        if (q) {
            q->vector = valid_vector(vp, value);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (qw && value == 1) {
            virtqueue_enable(vq);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
        if (qw) {
            set_half(&qw->desc, offset == VIRTIO_PCI_COMMON_Q_DESCHI, value);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
        if (qw) {
            set_half(&qw->avail, offset == VIRTIO_PCI_COMMON_Q_AVAILHI, value);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        if (qw) {
            set_half(&qw->used, offset == VIRTIO_PCI_COMMON_Q_USEDHI, value);
        }
        break;
    default:
        break; /* read-only or reserved */
    }
}

/* ---- the other areas ---- */

static uint64_t isr_read(VirtioPci *vp)
{
    /* Reading acknowledges: the bits clear and INTx drops. */
    uint8_t isr = g_atomic_int_and(&vp->isr, 0);
    pci_set_irq(&vp->pci, false);
    return isr;
}

static uint64_t device_cfg_read(VirtioPci *vp, uint64_t offset, unsigned size)
{
    uint8_t buf[8] = { 0 };
    if (vp->vdev->ops->config_read && offset + size <= vp->vdev->config_size) {
        vp->vdev->ops->config_read(vp->vdev, offset, buf, size);
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)buf[i] << (8 * i);
    }
    return v;
}

static void device_cfg_write(VirtioPci *vp, uint64_t offset, uint64_t value, unsigned size)
{
    uint8_t buf[8];
    for (unsigned i = 0; i < size; i++) {
        buf[i] = value >> (8 * i);
    }
    if (vp->vdev->ops->config_write && offset + size <= vp->vdev->config_size) {
        vp->vdev->ops->config_write(vp->vdev, offset, buf, size);
    }
}

/* A notification that KVM did not turn into an ioeventfd signal arrives here. */
static void notify_write(VirtioPci *vp, uint64_t offset)
{
    VirtQueue *vq = virtio_queue(vp->vdev, offset / NOTIFY_MULTIPLIER);
    if (vq) {
        uint64_t one = 1;
        (void)!write(virtqueue_notify_fd(vq), &one, sizeof(one));
    }
}

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
    VirtioPci *vp = opaque;
    uint64_t off = offset % REGION_SIZE;
    switch (offset - off) {
    case COMMON_OFF:
        return common_read(vp, off, size);
    case ISR_OFF:
        return off == 0 ? isr_read(vp) : 0;
    case DEVICE_OFF:
        return device_cfg_read(vp, off, size);
    default:
        return 0;
    }
}

static void bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    VirtioPci *vp = opaque;
    uint64_t off = offset % REGION_SIZE;
    switch (offset - off) {
    case COMMON_OFF:
        common_write(vp, off, value, size);
        break;
    case DEVICE_OFF:
        device_cfg_write(vp, off, value, size);
        break;
    case NOTIFY_OFF:
        notify_write(vp, off);
        break;
    default:
        break;
    }
}

static const IoRegionOps virtio_bar_ops = {
    .read = bar_read,
    .write = bar_write,
    .min_size = 1,
    .max_size = 4,
};

/* ---- PCI hooks ---- */

/*
 * A kick of any width (length 0) where KVM allows it, else a 2-byte one. Any
 * width is KVM's fast MMIO path, which skips the instruction undecoded and,
 * should the exit come in the middle of delivering an interrupt, simply
 * retries; a 2-byte match needs the instruction emulator, which KVM refuses
 * then (KVM_INTERNAL_ERROR_DELIVERY_EV, seen in the rig's emulated SVM).
 */
static bool queue_ioeventfd(VirtioPci *vp, Machine *m, int fd, uint64_t addr, bool assign, GError **err)
{
    if (assign) {
        vp->ioeventfd_len = m->ioeventfd(m, fd, addr, 0, true, NULL) ? 0 : 2;
        if (vp->ioeventfd_len == 0) {
            return true;
        }
    }
    return m->ioeventfd(m, fd, addr, vp->ioeventfd_len, assign, err);
}

static void set_ioeventfds(VirtioPci *vp, bool assign)
{
    Machine *m = pci_device_machine(&vp->pci);
    for (unsigned i = 0; i < vp->vdev->nqueues; i++) {
        if (vp->ioeventfd_on[i] == assign || !m->ioeventfd) {
            continue;
        }
        g_autoptr(GError) err = NULL;
        uint64_t addr = vp->notify_base + i * NOTIFY_MULTIPLIER;
        int fd = virtqueue_notify_fd(virtio_queue(vp->vdev, i));
        if (queue_ioeventfd(vp, m, fd, addr, assign, &err)) {
            vp->ioeventfd_on[i] = assign;
        } else if (assign) {
            /* Trapped notifications still work, at the cost of an exit each. */
            g_warning("%s: %s", vp->name, err->message);
        }
    }
}

static void vp_bar_mapped(PciDevice *dev, unsigned index, uint64_t addr, bool mapped)
{
    VirtioPci *vp = vp_of(dev);
    if (index != VIRTIO_BAR) {
        return;
    }
    if (!mapped) {
        set_ioeventfds(vp, false);
        vp->notify_base = PCI_BAR_UNMAPPED;
        return;
    }
    vp->notify_base = addr + NOTIFY_OFF;
    set_ioeventfds(vp, true);
}

static void vp_config_write(PciDevice *dev, unsigned reg, uint32_t value, unsigned size)
{
    msix_config_write(vp_of(dev)->msix, reg, size);
}

static void vp_reset(PciDevice *dev)
{
    VirtioPci *vp = vp_of(dev);
    virtio_device_reset(vp->vdev);
    msix_reset(vp->msix);
    g_atomic_int_set(&vp->isr, 0);
    pci_set_irq(dev, false);
    vp->dfselect = vp->gfselect = vp->queue_select = 0;
}

static const PciDeviceOps virtio_pci_ops = {
    .config_write = vp_config_write,
    .reset = vp_reset,
    .bar_mapped = vp_bar_mapped,
};

/* One vendor-specific capability pointing at [@offset, +@length) of BAR 4. */
static void add_virtio_cap(PciDevice *dev, uint8_t type, uint32_t offset, uint32_t length)
{
    bool notify = type == VIRTIO_PCI_CAP_NOTIFY_CFG;
    unsigned len = notify ? sizeof(struct virtio_pci_notify_cap) : sizeof(struct virtio_pci_cap);
    unsigned cap = pci_add_capability(dev, PCI_CAP_ID_VNDR, len);
    uint8_t *c = &dev->config[cap];
    c[VIRTIO_PCI_CAP_LEN] = len;
    c[VIRTIO_PCI_CAP_CFG_TYPE] = type;
    c[VIRTIO_PCI_CAP_BAR] = VIRTIO_BAR;
    pci_set_long(c + VIRTIO_PCI_CAP_OFFSET, offset);
    pci_set_long(c + VIRTIO_PCI_CAP_LENGTH, length);
    if (notify) {
        pci_set_long(c + VIRTIO_PCI_NOTIFY_CAP_MULT, NOTIFY_MULTIPLIER);
    }
}

VirtioPci *virtio_pci_new(const DeviceContext *ctx, uint8_t devfn, VirtioDevice *vdev, const char *name,
                          uint32_t class_code, GError **err)
{
    g_autofree VirtioPci *vp = g_new0(VirtioPci, 1);
    vp->vdev = vdev;
    vp->model = name;
    vp->name = g_strdup_printf("%s 00:%02x.%x", name, devfn >> 3, devfn & 7);
    vp->notify_base = PCI_BAR_UNMAPPED;
    PciDeviceInfo info = {
        .vendor = VIRTIO_PCI_VENDOR,
        .device = VIRTIO_PCI_DEVICE_BASE + vdev->ops->device_id,
        .subsystem_vendor = VIRTIO_PCI_VENDOR,
        .subsystem = VIRTIO_PCI_SUBSYSTEM,
        .class_code = class_code,
        .revision = 1,
        .intx_pin = 1,
    };
    if (!pci_device_init(&vp->pci, ctx->pci, devfn, &info, &virtio_pci_ops, vp->name, err)) {
        g_free(vp->name);
        return NULL;
    }
    vdev->name = vp->name;
    vdev->transport = &transport_ops;
    vdev->transport_opaque = vp;
    vp->intx_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert(vp->intx_fd >= 0);
    vp->intx_watch = g_unix_fd_add(vp->intx_fd, G_IO_IN, raise_intx, vp);
    vp->ioeventfd_on = g_new0(bool, vdev->nqueues);
    vp->msix = msix_new(&vp->pci, MIN(vdev->nqueues + 1, MSIX_MAX_VECTORS), MSIX_BAR);
    add_virtio_cap(&vp->pci, VIRTIO_PCI_CAP_COMMON_CFG, COMMON_OFF, sizeof(struct virtio_pci_common_cfg));
    add_virtio_cap(&vp->pci, VIRTIO_PCI_CAP_ISR_CFG, ISR_OFF, 1);
    add_virtio_cap(&vp->pci, VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_OFF, MAX(vdev->config_size, 1u));
    add_virtio_cap(&vp->pci, VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFF, vdev->nqueues * NOTIFY_MULTIPLIER);
    pci_device_add_bar(&vp->pci, VIRTIO_BAR, VIRTIO_BAR_SIZE, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, &virtio_bar_ops, vp);
    return g_steal_pointer(&vp);
}

/* ---- migration ---- */

static const VMStateField virtio_pci_fields[] = {
    VMSTATE_STRUCT(VirtioPci, pci, pci_device_vmsd, PciDevice),
    VMSTATE_UINT32(VirtioPci, dfselect),
    VMSTATE_UINT32(VirtioPci, gfselect),
    VMSTATE_UINT16(VirtioPci, queue_select),
    VMSTATE_UINT32(VirtioPci, isr),
    VMSTATE_END,
};

static const VMStateDescription virtio_pci_vmsd = {
    .name = "virtio-pci",
    .version = 1,
    .minimum_version = 1,
    .fields = virtio_pci_fields,
};

void virtio_pci_register_state(VirtioPci *vp, const VMStateDescription *dev_vmsd, void *dev_opaque)
{
    Machine *m = pci_device_machine(&vp->pci);
    g_autofree char *id = pci_device_state_id(&vp->pci, vp->model);
    g_autofree char *msix_id = g_strdup_printf("%s/msix", id);
    g_autofree char *vq_id = g_strdup_printf("%s/vq", id);
    g_autofree char *dev_id = g_strdup_printf("%s/device", id);
    vmstate_register(m, id, 0, &virtio_pci_vmsd, vp);
    vmstate_register(m, msix_id, 0, &msix_vmsd, vp->msix);
    for (unsigned i = 0; i < vp->vdev->nqueues; i++) {
        vmstate_register(m, vq_id, i, &virtqueue_vmsd, virtio_queue(vp->vdev, i));
    }
    vmstate_register(m, dev_id, 0, dev_vmsd, dev_opaque);
    vp->state_opaque = dev_opaque;
}

static void unregister_state(VirtioPci *vp)
{
    Machine *m = pci_device_machine(&vp->pci);
    if (!vp->state_opaque) {
        return;
    }
    vmstate_unregister(m, vp->state_opaque);
    for (unsigned i = 0; i < vp->vdev->nqueues; i++) {
        vmstate_unregister(m, virtio_queue(vp->vdev, i));
    }
    vmstate_unregister(m, vp->msix);
    vmstate_unregister(m, vp);
    vp->state_opaque = NULL;
}

void virtio_pci_free(VirtioPci *vp)
{
    if (!vp) {
        return;
    }
    unregister_state(vp);
    virtio_device_reset(vp->vdev);
    pci_device_cleanup(&vp->pci); /* unmaps BAR 4, which drops the ioeventfds */
    msix_free(vp->msix);
    g_source_remove(vp->intx_watch);
    close(vp->intx_fd);
    g_free(vp->ioeventfd_on);
    g_free(vp->name);
    g_free(vp);
}
