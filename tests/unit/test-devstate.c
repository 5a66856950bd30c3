/*
 * Device state across a migration: a device driven into a state a guest
 * would notice (registers, FIFOs, pending interrupts, CMOS, virtqueues with
 * requests done and MSI-X vectors programmed) is saved section by section,
 * as the migration stream carries it, and loaded into the same device built
 * afresh on a second machine from the same options. The second one must
 * read back the same, raise the same interrupts and complete the guest's
 * next request where the first left off. Truncated and corrupted sections
 * are refused with an error naming the device and field, and leave nothing
 * that crashes or keeps the right state from loading afterwards.
 */
#include "hw/acpi/pm.h"
#include "hw/char/serial.h"
#include "hw/core/device.h"
#include "hw/input/i8042.h"
#include "hw/misc/port92.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci-host.h"
#include "hw/pci/pci.h"
#include "hw/timer/rtc.h"
#include "hw/virtio/virtio.h"
#include "main-loop-wait.h"
#include "migration/vmstate.h"
#include "net-frames.h"
#include <glib/gstdio.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- sections, as the stream carries them ---- */

typedef struct {
    char *id;
    uint32_t instance;
    int version;
    GByteArray *payload;
} Section;

static void section_free(gpointer p)
{
    Section *s = p;
    g_free(s->id);
    g_byte_array_unref(s->payload);
    g_free(s);
}

/* Quiesce every device, then save every registered section in order, as a migration's last phase does. */
static GPtrArray *save_all(Machine *m)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(section_free);
    for (guint i = 0; i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        if (e->vmsd->quiesce) {
            e->vmsd->quiesce(e->opaque);
        }
    }
    for (guint i = 0; i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        Section *s = g_new0(Section, 1);
        s->id = g_strdup(e->id);
        s->instance = e->instance;
        s->version = e->vmsd->version;
        s->payload = g_byte_array_new();
        g_autoptr(GError) err = NULL;
        g_assert_true(vmstate_save(e->vmsd, e->opaque, s->payload, &err));
        g_assert_no_error(err);
        g_ptr_array_add(out, s);
    }
    return out;
}

static bool load_section(Machine *m, const Section *s, const uint8_t *data, size_t len, GError **err)
{
    const VMStateEntry *e = vmstate_find(m, s->id, s->instance);
    g_assert_nonnull(e);
    return vmstate_load(e->vmsd, e->opaque, s->version, data, len, err);
}

static void load_all(Machine *m, GPtrArray *sections)
{
    for (guint i = 0; i < sections->len; i++) {
        const Section *s = g_ptr_array_index(sections, i);
        g_autoptr(GError) err = NULL;
        g_assert_true(load_section(m, s, s->payload->data, s->payload->len, &err));
        g_assert_no_error(err);
    }
}

static const Section *find_section(GPtrArray *sections, const char *id, uint32_t instance)
{
    for (guint i = 0; i < sections->len; i++) {
        const Section *s = g_ptr_array_index(sections, i);
        if (!strcmp(s->id, id) && s->instance == instance) {
            return s;
        }
    }
    g_assert_not_reached();
}

/*
 * Every shorter payload of @s is refused, with a message about device
 * state; the device may be left anywhere that does not crash.
 */
static void refuse_truncations(Machine *m, const Section *s)
{
    for (guint len = 0; len < s->payload->len; len++) {
        g_autoptr(GError) err = NULL;
        g_assert_false(load_section(m, s, s->payload->data, len, &err));
        g_assert_nonnull(err);
        g_assert_true(g_str_has_prefix(err->message, "device state '"));
    }
}

/* ---- the legacy devices of a pc ---- */

typedef struct {
    Machine m;
    bool level[24];
    Serial *serial;
    Rtc *rtc;
    I8042 *kbc;
    Port92 *port92;
    AcpiPm *pm;
    PciHost *host;
} Pc;

static void set_level(void *opaque, unsigned line, bool level)
{
    ((Pc *)opaque)->level[line] = level;
}

static void ignore_request(Machine *m, ShutdownCause cause)
{
}

static void pc_init(Pc *pc)
{
    *pc = (Pc){ .m = { .pio = io_map_new("pio"), .mmio = io_map_new("mmio"), .request_reset = ignore_request,
                       .request_shutdown = ignore_request } };
    g_autoptr(GError) err = NULL;
    pc->serial = serial_new(&pc->m, SERIAL_COM1_BASE, (IrqLine){ set_level, pc, 4 }, NULL, &err);
    pc->rtc = rtc_new(&pc->m, (IrqLine){ set_level, pc, 8 }, &err);
    pc->kbc = i8042_new(&pc->m, (IrqLine){ set_level, pc, 1 }, (IrqLine){ set_level, pc, 12 }, &err);
    pc->port92 = port92_new(&pc->m, &err);
    pc->pm = acpi_pm_new(&pc->m, (IrqLine){ set_level, pc, 9 }, &err);
    PciBusConfig pci = { .intx = { set_level, pc, 0 }, .io_start = 0xc000, .io_end = 0x10000 };
    pc->host = pci_host_new(&pc->m, &pci, 0, &err);
    g_assert_no_error(err);
}

static void pc_fini(Pc *pc)
{
    pci_host_free(pc->host);
    acpi_pm_free(pc->pm);
    port92_free(pc->port92);
    i8042_free(pc->kbc);
    rtc_free(pc->rtc);
    serial_free(pc->serial);
    g_assert_cmpuint(pc->m.vmstate_entries->len, ==, 0); /* each device unregistered itself */
    g_ptr_array_unref(pc->m.vmstate_entries);
    io_map_free(pc->m.pio);
    io_map_free(pc->m.mmio);
}

static void out(Pc *pc, uint16_t port, uint32_t v, unsigned len)
{
    uint8_t d[4] = { v, v >> 8, v >> 16, v >> 24 };
    g_assert_true(io_map_dispatch(pc->m.pio, port, d, len, true));
}

static uint32_t in(Pc *pc, uint16_t port, unsigned len)
{
    uint8_t d[4] = { 0 };
    g_assert_true(io_map_dispatch(pc->m.pio, port, d, len, false));
    return d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24;
}

static uint8_t cmos(Pc *pc, uint8_t reg)
{
    out(pc, 0x70, reg, 1);
    return in(pc, 0x71, 1);
}

/* What a guest might have done to the legacy devices by the time it is migrated. */
static void drive_legacy(Pc *pc)
{
    /* Serial: 115200 8N1, FIFOs, scratch, two bytes looped back into the receive FIFO, interrupts on. */
    out(pc, 0x3fb, 0x83, 1);
    out(pc, 0x3f8, 0x01, 1);
    out(pc, 0x3f9, 0x00, 1);
    out(pc, 0x3fb, 0x03, 1);
    out(pc, 0x3fa, 0x07, 1);
    out(pc, 0x3ff, 0x5a, 1);
    out(pc, 0x3fc, 0x18, 1); /* loopback, OUT2 */
    out(pc, 0x3f8, 'h', 1);
    out(pc, 0x3f8, 'i', 1);
    out(pc, 0x3fc, 0x08, 1); /* OUT2: the IRQ reaches the bus */
    out(pc, 0x3f9, 0x03, 1); /* received data, THR empty */
    g_assert_true(pc->level[4]);
    /* RTC: an NVRAM byte, an alarm at 12:34:56 with its interrupt enabled, the year 2042. */
    const uint8_t writes[][2] = { { 0x40, 0xab }, { 0x01, 0x56 }, { 0x03, 0x34 }, { 0x05, 0x12 },
                                  { 0x0b, 0x22 }, { 0x09, 0x42 } };
    for (size_t i = 0; i < G_N_ELEMENTS(writes); i++) {
        out(pc, 0x70, writes[i][0], 1);
        out(pc, 0x71, writes[i][1], 1);
    }
    out(pc, 0x70, 0x80 | 0x40, 1); /* NMI masked, index left at 0x40 */
    /* i8042: a command byte, and a byte waiting in the output buffer with IRQ 1 up. */
    out(pc, 0x64, 0x60, 1);
    out(pc, 0x60, 0x45, 1);
    out(pc, 0x64, 0xd2, 1);
    out(pc, 0x60, 0x99, 1);
    g_assert_true(pc->level[1]);
    /* Port 0x92: A20 off. */
    out(pc, 0x92, 0x00, 1);
    /* ACPI: the power button GPE enabled and pressed (SCI up), a sleep type written. */
    out(pc, ACPI_PM_GPE0_PORT + 2, 1, 2);
    acpi_pm_press_power_button(pc->pm);
    g_assert_true(pc->level[9]);
    out(pc, ACPI_PM_CNT_PORT, 3 << 10, 2);
    /* PCI host: the host bridge's latency timer, and CONFIG_ADDRESS left pointing at it. */
    out(pc, 0xcf8, 0x8000000c, 4);
    out(pc, 0xcfd, 0x40, 1);
}

/* What a guest reads next, in order (some reads change state, as they do on hardware). */
static GByteArray *observe_legacy(Pc *pc)
{
    GByteArray *seen = g_byte_array_new();
#define SEEN(v) do { uint32_t v_ = (v); g_byte_array_append(seen, (const uint8_t *)&v_, 4); } while (0)
    SEEN(pc->level[4]);
    SEEN(pc->level[1]);
    SEEN(pc->level[9]);
    SEEN(in(pc, 0x3fb, 1));
    SEEN(in(pc, 0x3ff, 1));
    SEEN(in(pc, 0x3f9, 1));
    SEEN(in(pc, 0x3fa, 1)); /* received data */
    SEEN(in(pc, 0x3f8, 1));
    SEEN(in(pc, 0x3f8, 1));
    SEEN(in(pc, 0x3fa, 1)); /* then THR empty, acknowledged by this read */
    SEEN(in(pc, 0x3fa, 1));
    SEEN(pc->level[4]);
    out(pc, 0x3fb, 0x83, 1);
    SEEN(in(pc, 0x3f8, 1) | in(pc, 0x3f9, 1) << 8); /* the divisor */
    out(pc, 0x3fb, 0x03, 1);
    SEEN(in(pc, 0x71, 1)); /* the index the guest left */
    SEEN(rtc_nmi_masked(pc->rtc));
    const uint8_t regs[] = { 0x01, 0x03, 0x05, 0x0b, 0x09, 0x32 };
    for (size_t i = 0; i < G_N_ELEMENTS(regs); i++) {
        SEEN(cmos(pc, regs[i]));
    }
    SEEN(in(pc, 0x64, 1));
    SEEN(in(pc, 0x60, 1));
    SEEN(pc->level[1]);
    out(pc, 0x64, 0x20, 1);
    SEEN(in(pc, 0x60, 1));
    SEEN(in(pc, 0x92, 1));
    SEEN(in(pc, ACPI_PM_GPE0_PORT, 4));
    SEEN(in(pc, ACPI_PM_CNT_PORT, 2));
    SEEN(in(pc, 0xcf8, 4));
    SEEN(in(pc, 0xcfd, 1));
#undef SEEN
    return seen;
}

static void test_legacy_round_trip(void)
{
    Pc a, b, ref;
    pc_init(&a);
    drive_legacy(&a);
    /* The same guest actions on a machine that is not migrated: what B must match. */
    pc_init(&ref);
    drive_legacy(&ref);
    g_autoptr(GByteArray) expected = observe_legacy(&ref);

    uint32_t pm_timer_a = in(&a, ACPI_PM_TMR_PORT, 4);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    g_assert_cmpuint(sections->len, ==, 6);
    const char *ids[] = { "serial", "rtc", "i8042", "port92", "acpi-pm", "pci-host" };
    for (guint i = 0; i < sections->len; i++) {
        g_assert_cmpstr(((Section *)g_ptr_array_index(sections, i))->id, ==, ids[i]);
    }
    pc_fini(&a);

    pc_init(&b);
    g_assert_false(b.level[4] || b.level[1] || b.level[9]);
    load_all(&b.m, sections);
    /* The PM timer goes on from where it was. */
    g_assert_cmpuint(in(&b, ACPI_PM_TMR_PORT, 4) - pm_timer_a, <, 0x80000000u);
    g_autoptr(GByteArray) seen = observe_legacy(&b);
    g_assert_cmpmem(seen->data, seen->len, expected->data, expected->len);
    g_assert_cmpuint(cmos(&b, 0x40), ==, 0xab);
    pc_fini(&b);
    pc_fini(&ref);
}

static void test_legacy_refusals(void)
{
    Pc a, b;
    pc_init(&a);
    drive_legacy(&a);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    pc_fini(&a);

    pc_init(&b);
    for (guint i = 0; i < sections->len; i++) {
        refuse_truncations(&b.m, g_ptr_array_index(sections, i));
    }
    /* A FIFO index no 16550A has: refused, naming the field, the UART back at power-on. */
    const Section *serial = find_section(sections, "serial", 0);
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, serial->payload->data, serial->payload->len);
    unsigned rx_head_at = 2 + 7 + 1 + 16; /* divisor, 7 registers, thre_pending, rx[] */
    bad->data[rx_head_at] = 0x40;
    g_autoptr(GError) err = NULL;
    g_assert_false(load_section(&b.m, serial, bad->data, bad->len, &err));
    g_assert_nonnull(strstr(err->message, "device state 'serial', field rx_head"));
    g_assert_cmphex(in(&b, 0x3fd, 1), ==, 0x60); /* LSR: empty, idle */
    g_clear_error(&err);
    /* A CMOS index past the end. */
    const Section *rtc = find_section(sections, "rtc", 0);
    g_byte_array_set_size(bad, 0);
    g_byte_array_append(bad, rtc->payload->data, rtc->payload->len);
    bad->data[RTC_CMOS_SIZE] = 0x90;
    g_assert_false(load_section(&b.m, rtc, bad->data, bad->len, &err));
    g_assert_cmpstr(err->message, ==, "device state 'rtc', field index: 144 is not a CMOS register");
    g_clear_error(&err);
    /* A different host bridge. */
    const Section *host = find_section(sections, "pci-host", 0);
    g_byte_array_set_size(bad, 0);
    g_byte_array_append(bad, host->payload->data, host->payload->len);
    bad->data[4 + 1 + 2] ^= 0x01; /* config_address, rcr: then the host bridge's device ID */
    g_assert_false(load_section(&b.m, host, bad->data, bad->len, &err));
    g_assert_nonnull(strstr(err->message, "device state 'i440fx', field config: read-only byte 0x02"));
    /* After all that, the right state still loads and reads back. */
    load_all(&b.m, sections);
    g_assert_cmpuint(in(&b, 0x3ff, 1), ==, 0x5a);
    g_assert_cmpuint(in(&b, 0xcfd, 1), ==, 0x40);
    pc_fini(&b);
}

/* ---- virtio PCI functions ---- */

#define RAM_SIZE (4u << 20)
#define QSIZE 8
#define RINGS 0x1000
#define BUFS 0x100000
#define MSI_ADDR 0xfee00000u
#define MSI_DATA_QUEUE 0x41
#define MSI_DATA_CONFIG 0x42

typedef struct {
    uint64_t desc, avail, used;
    uint16_t next_desc, avail_idx;
} Queue;

/* The guest: its RAM and what its driver knows. Outlives the machines. */
typedef struct {
    uint8_t *ram;
    Queue q[2];
    uint64_t next_buf;
} Guest;

/* One machine with a PCI bus and the devices of an option list. */
typedef struct {
    Machine m;
    Guest *g;
    VmConfig *cfg;
    PciHost *host;
    DeviceContext ctx;
    uint64_t common, notify, device, msix_table;
    uint32_t notify_mult;
    unsigned msix_cap;
    GArray *msis; /* uint32_t data of each MSI sent */
} Vm;

static void *vm_gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    Vm *vm = (Vm *)m;
    return gpa + len >= gpa && gpa + len <= RAM_SIZE ? vm->g->ram + gpa : NULL;
}

static void record_msi(Machine *m, uint64_t addr, uint32_t data)
{
    Vm *vm = (Vm *)m;
    g_assert_cmphex(addr, ==, MSI_ADDR);
    g_array_append_val(vm->msis, data);
}

static void ignore_gsi(void *opaque, unsigned gsi, bool level)
{
}

static void mmio_write(Vm *vm, uint64_t addr, uint64_t v, unsigned len)
{
    uint8_t data[8];
    for (unsigned i = 0; i < 8; i++) {
        data[i] = v >> (8 * i);
    }
    g_assert_true(io_map_dispatch(vm->m.mmio, addr, data, len, true));
}

static uint64_t mmio_read(Vm *vm, uint64_t addr, unsigned len)
{
    uint8_t data[8] = { 0 };
    g_assert_true(io_map_dispatch(vm->m.mmio, addr, data, len, false));
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)data[i] << (8 * i);
    }
    return v;
}

static uint32_t cfg_read(Vm *vm, unsigned reg, unsigned size)
{
    return pci_bus_config_read(pci_host_bus(vm->host), PCI_DEVFN(2, 0), reg, size);
}

static void cfg_write(Vm *vm, unsigned reg, uint32_t v, unsigned size)
{
    pci_bus_config_write(pci_host_bus(vm->host), PCI_DEVFN(2, 0), reg, v, size);
}

static uint64_t bar_address(Vm *vm, unsigned bar)
{
    uint32_t lo = cfg_read(vm, PCI_BAR0 + 4 * bar, 4);
    uint64_t addr = lo & ~0xfULL;
    if ((lo & 0x6) == 0x4) {
        addr |= (uint64_t)cfg_read(vm, PCI_BAR0 + 4 * bar + 4, 4) << 32;
    }
    return addr;
}

/* Where the driver finds things: walked again on each machine, from what the guest programmed. */
static void find_structures(Vm *vm)
{
    vm->common = vm->notify = vm->device = vm->msix_table = 0;
    for (unsigned cap = cfg_read(vm, PCI_CAPABILITY_LIST, 1); cap; cap = cfg_read(vm, cap + 1, 1)) {
        if (cfg_read(vm, cap, 1) == PCI_CAP_ID_MSIX) {
            vm->msix_cap = cap;
            uint32_t table = cfg_read(vm, cap + 4, 4);
            vm->msix_table = bar_address(vm, table & 7) + (table & ~7u);
            continue;
        }
        if (cfg_read(vm, cap, 1) != 0x09) {
            continue;
        }
        uint64_t addr = bar_address(vm, cfg_read(vm, cap + VIRTIO_PCI_CAP_BAR, 1)) +
                        cfg_read(vm, cap + VIRTIO_PCI_CAP_OFFSET, 4);
        switch (cfg_read(vm, cap + VIRTIO_PCI_CAP_CFG_TYPE, 1)) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            vm->common = addr;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            vm->notify = addr;
            vm->notify_mult = cfg_read(vm, cap + 16, 4);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            vm->device = addr;
            break;
        }
    }
    g_assert_true(vm->common && vm->notify && vm->msix_table);
}

static void vm_init(Vm *vm, Guest *g, const char *const *argv)
{
    *vm = (Vm){ .m = { .pio = io_map_new("pio"), .mmio = io_map_new("mmio"), .gpa_to_hva = vm_gpa_to_hva,
                       .send_msi = record_msi },
                .g = g, .msis = g_array_new(FALSE, FALSE, sizeof(uint32_t)) };
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    g_ptr_array_add(args, "vireo");
    for (; *argv; argv++) {
        g_ptr_array_add(args, (gpointer)*argv);
    }
    g_autoptr(GError) err = NULL;
    vm->cfg = vm_config_new();
    g_assert_true(vm_config_parse(vm->cfg, args->len, (char **)args->pdata, &err));
    PciBusConfig pci = {
        .intx = { ignore_gsi, vm, 0 },
        .io_start = 0xc000, .io_end = 0x10000,
        .mmio32_start = 0xc0000000, .mmio32_end = 0xfec00000,
        .mmio64_start = 0x800000000ULL, .mmio64_end = 0x1000000000ULL,
    };
    vm->host = pci_host_new(&vm->m, &pci, 0, &err);
    g_assert_no_error(err);
    vm->ctx = (DeviceContext){ &vm->m, pci_host_bus(vm->host), vm->cfg, g_ptr_array_new() };
    g_assert_true(device_create_all(&vm->ctx, vm->cfg->devices, &err));
    g_assert_no_error(err);
    g_assert_true(pci_bus_assign_resources(pci_host_bus(vm->host), &err));
    find_structures(vm);
}

static void vm_fini(Vm *vm)
{
    device_destroy_all(vm->ctx.created);
    g_ptr_array_unref(vm->ctx.created);
    pci_host_free(vm->host);
    g_assert_cmpuint(vm->m.vmstate_entries->len, ==, 0);
    g_ptr_array_unref(vm->m.vmstate_entries);
    io_map_free(vm->m.pio);
    io_map_free(vm->m.mmio);
    vm_config_free(vm->cfg);
    g_array_unref(vm->msis);
}

static void set_status(Vm *vm, uint8_t status)
{
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_STATUS, status, 1);
}

/*
 * What Linux's driver does, as far as these tests need: the BARs moved
 * away from where Vireo put them, MSI-X with queue vector 0 and config
 * vector 1, VERSION_1, @nq queues, DRIVER_OK.
 */
static void driver_init(Vm *vm, unsigned nq)
{
    uint64_t virtio_bar = bar_address(vm, 4), msix_bar = bar_address(vm, 1);
    cfg_write(vm, PCI_BAR0 + 4 * 4, (uint32_t)(virtio_bar + 0x100000) | 0xc, 4);
    cfg_write(vm, PCI_BAR0 + 4 * 1, (uint32_t)(msix_bar + 0x100000), 4);
    find_structures(vm);
    g_assert_cmphex(bar_address(vm, 4), ==, virtio_bar + 0x100000);
    for (unsigned v = 0; v < 2; v++) {
        uint64_t e = vm->msix_table + 16 * v;
        mmio_write(vm, e, MSI_ADDR, 4);
        mmio_write(vm, e + 4, 0, 4);
        mmio_write(vm, e + 8, v ? MSI_DATA_CONFIG : MSI_DATA_QUEUE, 4);
        mmio_write(vm, e + 12, 0, 4); /* unmasked */
    }
    cfg_write(vm, vm->msix_cap + 3, 0x80, 1); /* MSI-X enable */

    set_status(vm, 0);
    set_status(vm, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_GF, 1, 4); /* VERSION_1 */
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_GF, 0, 4);
    set_status(vm, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_MSIX, 1, 2);
    memset(vm->g->ram, 0, BUFS);
    vm->g->next_buf = BUFS;
    for (unsigned i = 0; i < nq; i++) {
        Queue *q = &vm->g->q[i];
        uint64_t base = RINGS + 0x1000ULL * i;
        *q = (Queue){ .desc = base, .avail = base + 16 * QSIZE, .used = base + 0x800 };
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_MSIX, 0, 2);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_DESCLO, q->desc, 4);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_AVAILLO, q->avail, 4);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_USEDLO, q->used, 4);
        mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    mmio_write(vm, vm->common + VIRTIO_PCI_COMMON_Q_SELECT, nq - 1, 2);
    set_status(vm, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                       VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Chain buffers (@data non-NULL: device-readable) as one request; returns the first buffer's address. */
typedef struct {
    const void *data;
    uint32_t len;
} Buf;

static uint64_t post_chain(Guest *g, unsigned qi, const Buf *bufs, unsigned n)
{
    Queue *q = &g->q[qi];
    struct vring_desc *desc = (struct vring_desc *)(g->ram + q->desc);
    uint16_t head = q->next_desc % QSIZE;
    uint64_t first = g->next_buf;
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = g->next_buf;
        g->next_buf += (bufs[i].len + 15) & ~15u;
        if (bufs[i].data) {
            memcpy(g->ram + addr, bufs[i].data, bufs[i].len);
        }
        unsigned d = q->next_desc++ % QSIZE;
        desc[d] = (struct vring_desc){ addr, bufs[i].len, (bufs[i].data ? 0 : VRING_DESC_F_WRITE) |
                                                                (i + 1 < n ? VRING_DESC_F_NEXT : 0),
                                       (uint16_t)(q->next_desc % QSIZE) };
    }
    struct vring_avail *avail = (struct vring_avail *)(g->ram + q->avail);
    avail->ring[q->avail_idx % QSIZE] = head;
    __atomic_store_n(&avail->idx, ++q->avail_idx, __ATOMIC_RELEASE);
    return first;
}

static void kick(Vm *vm, unsigned qi)
{
    mmio_write(vm, vm->notify + qi * vm->notify_mult, qi, 2);
}

static uint16_t used_idx(Guest *g, unsigned qi)
{
    return __atomic_load_n(&((struct vring_used *)(g->ram + g->q[qi].used))->idx, __ATOMIC_ACQUIRE);
}

static unsigned msis(Vm *vm, uint32_t data)
{
    unsigned n = 0;
    for (guint i = 0; i < vm->msis->len; i++) {
        n += g_array_index(vm->msis, uint32_t, i) == data;
    }
    return n;
}

/* ---- virtio-rng ---- */

static const char *const rng_argv[] = { "-device", "virtio-rng-pci", NULL };

static uint64_t post_rng(Guest *g)
{
    return post_chain(g, 0, &(Buf){ NULL, 64 }, 1);
}

static bool nonzero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return true;
        }
    }
    return false;
}

/* A driver with requests done, another posted and kicked but not served yet when the source stops. */
static GPtrArray *rng_source(Guest *g)
{
    Vm a;
    vm_init(&a, g, rng_argv);
    driver_init(&a, 1);
    for (int i = 0; i < 2; i++) {
        post_rng(g);
        kick(&a, 0);
        ITERATE_UNTIL(used_idx(g, 0) == i + 1 && msis(&a, MSI_DATA_QUEUE) == (unsigned)i + 1);
        g_assert_cmpuint(used_idx(g, 0), ==, i + 1);
        g_assert_cmpuint(msis(&a, MSI_DATA_QUEUE), ==, i + 1);
    }
    post_rng(g);
    kick(&a, 0); /* the main loop does not run again on this machine */
    GPtrArray *sections = save_all(&a.m);
    g_assert_cmpuint(used_idx(g, 0), ==, 2);
    vm_fini(&a);
    return sections;
}

static void test_rng_round_trip(void)
{
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    g_autoptr(GPtrArray) sections = rng_source(&g);
    /* Ids name the function, then each layer in load order. */
    const char *ids[] = { "pci-host", "00:02.0/virtio-rng-pci", "00:02.0/virtio-rng-pci/msix",
                          "00:02.0/virtio-rng-pci/vq", "00:02.0/virtio-rng-pci/device" };
    g_assert_cmpuint(sections->len, ==, G_N_ELEMENTS(ids));
    for (guint i = 0; i < sections->len; i++) {
        g_assert_cmpstr(((Section *)g_ptr_array_index(sections, i))->id, ==, ids[i]);
    }

    Vm b;
    vm_init(&b, &g, rng_argv);
    load_all(&b.m, sections);
    /* The driver's view: the BAR it moved, its queue, its vectors. */
    find_structures(&b);
    g_assert_cmphex(mmio_read(&b, b.common + VIRTIO_PCI_COMMON_STATUS, 1), ==, 0xf);
    g_assert_cmpuint(mmio_read(&b, b.common + VIRTIO_PCI_COMMON_Q_SELECT, 2), ==, 0);
    g_assert_cmpuint(mmio_read(&b, b.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 1);
    g_assert_cmpuint(mmio_read(&b, b.common + VIRTIO_PCI_COMMON_MSIX, 2), ==, 1);
    g_assert_cmpuint(mmio_read(&b, b.msix_table + 8, 4), ==, MSI_DATA_QUEUE);
    /* The request posted before the switch is served here, with an interrupt through the same vector. */
    ITERATE_UNTIL(used_idx(&g, 0) == 3 && msis(&b, MSI_DATA_QUEUE) == 1);
    g_assert_cmpuint(used_idx(&g, 0), ==, 3);
    g_assert_cmpuint(msis(&b, MSI_DATA_QUEUE), ==, 1);
    /* And the next one. */
    uint64_t buf = post_rng(&g);
    kick(&b, 0);
    ITERATE_UNTIL(used_idx(&g, 0) == 4 && msis(&b, MSI_DATA_QUEUE) == 2);
    g_assert_cmpuint(used_idx(&g, 0), ==, 4);
    struct vring_used *used = (struct vring_used *)(g.ram + g.q[0].used);
    g_assert_cmpuint(used->ring[3].len, ==, 64);
    g_assert_true(nonzero(g.ram + buf, 64));
    vm_fini(&b);
    g_free(g.ram);
}

static void test_virtio_refusals(void)
{
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    g_autoptr(GPtrArray) sections = rng_source(&g);
    Vm b;
    vm_init(&b, &g, rng_argv);
    for (guint i = 0; i < sections->len; i++) {
        refuse_truncations(&b.m, g_ptr_array_index(sections, i));
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) bad = g_byte_array_new();
    /* Another device's configuration space. */
    const Section *fn = find_section(sections, "00:02.0/virtio-rng-pci", 0);
    g_byte_array_append(bad, fn->payload->data, fn->payload->len);
    bad->data[PCI_DEVICE_ID] ^= 0x01;
    g_assert_false(load_section(&b.m, fn, bad->data, bad->len, &err));
    g_assert_cmpstr(err->message, ==,
                    "device state 'virtio-rng-pci 00:02.0', field config: read-only byte 0x02 is 0x45 in the stream, "
                    "0x44 here (not the same device)");
    g_clear_error(&err);
    /* A queue size the device cannot have. */
    const Section *vq = find_section(sections, "00:02.0/virtio-rng-pci/vq", 0);
    g_byte_array_set_size(bad, 0);
    g_byte_array_append(bad, vq->payload->data, vq->payload->len);
    bad->data[0] = 3;
    g_assert_false(load_section(&b.m, vq, bad->data, bad->len, &err));
    g_assert_cmpstr(err->message, ==,
                    "device state 'virtio-rng-pci 00:02.0 queue 0', field size: 3 is not a power of two up to 8");
    g_clear_error(&err);
    /* Rings outside guest RAM. */
    bad->data[0] = QSIZE;
    memset(bad->data + 2 + 2 + 1, 0x7f, 8);
    g_assert_false(load_section(&b.m, vq, bad->data, bad->len, &err));
    g_assert_nonnull(strstr(err->message, "device state 'virtio-rng-pci 00:02.0 queue 0', field cfg: rings at"));
    g_clear_error(&err);
    /* Features the device does not offer. */
    const Section *dev = find_section(sections, "00:02.0/virtio-rng-pci/device", 0);
    g_byte_array_set_size(bad, 0);
    g_byte_array_append(bad, dev->payload->data, dev->payload->len);
    bad->data[1 + 8 + 7] = 0x80; /* status, guest_features, then bit 63 of features */
    g_assert_false(load_section(&b.m, dev, bad->data, bad->len, &err));
    g_assert_nonnull(strstr(err->message, "device state 'virtio-rng-pci 00:02.0', field features: 0x8"));
    find_structures(&b); /* a section cut after its configuration space did move the BARs */
    g_assert_cmpuint(mmio_read(&b, b.common + VIRTIO_PCI_COMMON_STATUS, 1), ==, 0);
    /* Nothing of that stays in the way of the real state. */
    load_all(&b.m, sections);
    ITERATE_UNTIL(used_idx(&g, 0) == 3);
    g_assert_cmpuint(used_idx(&g, 0), ==, 3);
    vm_fini(&b);
    g_free(g.ram);
}

/* ---- virtio-blk ---- */

#define SECTOR 512

typedef struct {
    char *dir, *path, *drive;
    const char *argv[5];
} Disk;

static void disk_init(Disk *d)
{
    d->dir = g_dir_make_tmp("vireo-devstate-XXXXXX", NULL);
    d->path = g_build_filename(d->dir, "disk.img", NULL);
    g_autofree uint8_t *zero = g_malloc0(1 << 20);
    g_assert_true(g_file_set_contents(d->path, (const char *)zero, 1 << 20, NULL));
    d->drive = g_strdup_printf("file=%s,if=none,id=d0,format=raw", d->path);
    const char *argv[] = { "-drive", d->drive, "-device", "virtio-blk-pci,drive=d0", NULL };
    memcpy(d->argv, argv, sizeof(argv));
}

static void disk_fini(Disk *d)
{
    g_unlink(d->path);
    g_rmdir(d->dir);
    g_free(d->dir);
    g_free(d->path);
    g_free(d->drive);
}

/* A request on queue 0: header, data (out or in), status byte. Returns the data's guest address. */
static uint64_t post_blk(Guest *g, uint32_t type, uint64_t sector, const void *data, uint8_t **status)
{
    struct virtio_blk_outhdr hdr = { .type = type, .sector = sector };
    Buf bufs[] = { { &hdr, sizeof(hdr) }, { data, SECTOR }, { NULL, 1 } };
    uint64_t first = post_chain(g, 0, bufs, 3);
    *status = g->ram + first + 16 + SECTOR;
    return first + 16;
}

static void test_blk_round_trip(void)
{
    Disk d;
    disk_init(&d);
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    uint8_t sector[SECTOR], *status;
    Vm a;
    vm_init(&a, &g, d.argv);
    driver_init(&a, 1);
    memset(sector, 'A', SECTOR);
    post_blk(&g, VIRTIO_BLK_T_OUT, 1, sector, &status);
    kick(&a, 0);
    ITERATE_UNTIL(used_idx(&g, 0) == 1);
    g_assert_cmpuint(*status, ==, VIRTIO_BLK_S_OK);
    /* A write the guest kicked just before its vCPUs stopped: quiescing completes it, no waiting. */
    memset(sector, 'B', SECTOR);
    post_blk(&g, VIRTIO_BLK_T_OUT, 2, sector, &status);
    *status = 0xff;
    kick(&a, 0);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    g_assert_cmpuint(used_idx(&g, 0), ==, 2);
    g_assert_cmpuint(*status, ==, VIRTIO_BLK_S_OK);
    vm_fini(&a);

    /* The destination: a new process on the same disk, RAM as the source left it. */
    Vm b;
    vm_init(&b, &g, d.argv);
    load_all(&b.m, sections);
    find_structures(&b);
    uint64_t data = post_blk(&g, VIRTIO_BLK_T_IN, 2, NULL, &status);
    kick(&b, 0);
    ITERATE_UNTIL(used_idx(&g, 0) == 3 && msis(&b, MSI_DATA_QUEUE) == 1);
    g_assert_cmpuint(used_idx(&g, 0), ==, 3);
    g_assert_cmpuint(*status, ==, VIRTIO_BLK_S_OK);
    g_assert_cmpmem(g.ram + data, SECTOR, sector, SECTOR);
    struct vring_used *used = (struct vring_used *)(g.ram + g.q[0].used);
    g_assert_cmpuint(used->ring[2].len, ==, SECTOR + 1);
    g_assert_cmpuint(msis(&b, MSI_DATA_QUEUE), ==, 1);
    /* And the first write is on the disk too. */
    data = post_blk(&g, VIRTIO_BLK_T_IN, 1, NULL, &status);
    kick(&b, 0);
    ITERATE_UNTIL(used_idx(&g, 0) == 4);
    memset(sector, 'A', SECTOR);
    g_assert_cmpmem(g.ram + data, SECTOR, sector, SECTOR);
    vm_fini(&b);
    g_free(g.ram);
    disk_fini(&d);
}

/* ---- virtio-net on -netdev user ---- */

enum { RXQ = 0, TXQ = 1, NET_HDR = 12, RXBUF = 2048 };

static const char *const net_argv[] = { "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", NULL };

static void send_discover(Vm *vm, uint32_t xid)
{
    uint8_t f[NET_HDR + 1500] = { 0 };
    size_t len = dhcp_discover(f + NET_HDR, xid);
    post_chain(vm->g, TXQ, &(Buf){ f, NET_HDR + len }, 1);
    kick(vm, TXQ);
}

/* The offer in receive buffer @n (posted at @addr), or 0. */
static uint32_t offer_in(Guest *g, unsigned n, uint64_t addr, uint32_t xid)
{
    struct vring_used *used = (struct vring_used *)(g->ram + g->q[RXQ].used);
    uint32_t len = used->ring[n % QSIZE].len;
    g_assert_cmpuint(len, >, NET_HDR);
    g_autoptr(GBytes) frame = g_bytes_new(g->ram + addr + NET_HDR, len - NET_HDR);
    return dhcp_offer(frame, xid);
}

static void test_net_round_trip(void)
{
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    Vm a;
    vm_init(&a, &g, net_argv);
    driver_init(&a, 2);
    uint64_t rx0 = post_chain(&g, RXQ, &(Buf){ NULL, RXBUF }, 1);
    kick(&a, RXQ);
    send_discover(&a, 0x1111);
    ITERATE_UNTIL(used_idx(&g, RXQ) == 1);
    g_assert_cmpuint(used_idx(&g, RXQ), ==, 1);
    g_assert_cmpuint(offer_in(&g, 0, rx0, 0x1111), !=, 0);
    /* A receive buffer posted and waiting when the source stops. */
    uint64_t rx1 = post_chain(&g, RXQ, &(Buf){ NULL, RXBUF }, 1);
    kick(&a, RXQ);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    vm_fini(&a);

    Vm b;
    vm_init(&b, &g, net_argv);
    load_all(&b.m, sections);
    find_structures(&b);
    send_discover(&b, 0x2222);
    ITERATE_UNTIL(used_idx(&g, RXQ) == 2 && msis(&b, MSI_DATA_QUEUE) >= 1);
    g_assert_cmpuint(used_idx(&g, RXQ), ==, 2);
    g_assert_cmpuint(used_idx(&g, TXQ), ==, 2);
    g_assert_cmpuint(offer_in(&g, 1, rx1, 0x2222), !=, 0);
    g_assert_cmpuint(msis(&b, MSI_DATA_QUEUE), >=, 1); /* one eventfd: may carry both */
    vm_fini(&b);
    g_free(g.ram);
}

/* ---- virtio-serial + virtconsole on a socket ---- */

/* Connect, and wait until the chardev has accepted (output before that is dropped). */
static int console_connect(Vm *vm, const char *path)
{
    int fd = unix_client(path);
    uint8_t sync;
    size_t got = 0;
    for (int i = 0; i < 20 && !got; i++) {
        post_chain(vm->g, TXQ, &(Buf){ ".", 1 }, 1);
        kick(vm, TXQ);
        got = client_read(fd, &sync, 1, 50);
    }
    g_assert_cmpuint(got, ==, 1);
    return fd;
}

static void test_console_round_trip(void)
{
    g_autofree char *dir = g_dir_make_tmp("vireo-devstate-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "hvc.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,server=on,wait=off", path);
    const char *argv[] = { "-chardev", chardev, "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=c0",
                           NULL };
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    Vm a;
    vm_init(&a, &g, argv);
    driver_init(&a, 2);
    int client = console_connect(&a, path);
    driver_init(&a, 2); /* fresh rings for the test */
    /* Input read into one buffer; the next is taken, waiting for more, when the source stops. */
    uint64_t rx0 = post_chain(&g, RXQ, &(Buf){ NULL, 64 }, 1);
    uint64_t rx = post_chain(&g, RXQ, &(Buf){ NULL, 64 }, 1);
    kick(&a, RXQ);
    g_assert_cmpint(write(client, "x", 1), ==, 1);
    ITERATE_UNTIL(used_idx(&g, RXQ) == 1);
    g_assert_cmpmem(g.ram + rx0, 1, "x", 1);
    post_chain(&g, TXQ, &(Buf){ "before\n", 7 }, 1);
    kick(&a, TXQ);
    uint8_t buf[64];
    g_assert_cmpuint(client_read(client, buf, 7, 1000), ==, 7);
    g_assert_cmpmem(buf, 7, "before\n", 7);
    ITERATE_UNTIL(used_idx(&g, TXQ) == 1);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    close(client);
    vm_fini(&a);

    Vm b;
    vm_init(&b, &g, argv);
    load_all(&b.m, sections);
    find_structures(&b);
    client = unix_client(path);
    /* Typed on the new machine, read into the buffer the guest posted on the old one. */
    g_assert_cmpint(write(client, "after", 5), ==, 5);
    ITERATE_UNTIL(used_idx(&g, RXQ) == 2);
    g_assert_cmpuint(used_idx(&g, RXQ), ==, 2);
    struct vring_used *used = (struct vring_used *)(g.ram + g.q[RXQ].used);
    g_assert_cmpuint(used->ring[1].len, ==, 5);
    g_assert_cmpmem(g.ram + rx, 5, "after", 5);
    /* And output goes on. */
    post_chain(&g, TXQ, &(Buf){ "again\n", 6 }, 1);
    kick(&b, TXQ);
    g_assert_cmpuint(client_read(client, buf, 6, 1000), ==, 6);
    g_assert_cmpmem(buf, 6, "again\n", 6);
    ITERATE_UNTIL(used_idx(&g, TXQ) == 2 && msis(&b, MSI_DATA_QUEUE) >= 1);
    g_assert_cmpuint(used_idx(&g, TXQ), ==, 2);
    close(client);
    vm_fini(&b);
    g_unlink(path);
    g_rmdir(dir);
    g_free(g.ram);
}

/*
 * Guest output the terminal is slow to take: the source stops with a chain
 * half written. The client's reader sees every byte once, in order: what
 * the source wrote, then the rest from the destination.
 */
static void test_console_output_resumes(void)
{
    g_autofree char *dir = g_dir_make_tmp("vireo-devstate-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "hvc.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,server=on,wait=off", path);
    const char *argv[] = { "-chardev", chardev, "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=c0",
                           NULL };
    enum { CHUNK = 512 * 1024, CHAINS = 2, TOTAL = CHUNK * CHAINS };
    g_autofree uint8_t *data = g_malloc(TOTAL);
    for (unsigned i = 0; i < TOTAL; i++) {
        data[i] = i * 7 % 251;
    }
    Guest g = { .ram = g_malloc0(RAM_SIZE) };
    Vm a;
    vm_init(&a, &g, argv);
    driver_init(&a, 2);
    int client = console_connect(&a, path);
    driver_init(&a, 2);
    for (unsigned i = 0; i < CHAINS; i++) {
        post_chain(&g, TXQ, &(Buf){ data + i * CHUNK, CHUNK }, 1);
    }
    kick(&a, TXQ);
    for (int i = 0; i < 100; i++) { /* the device writes what the socket takes, then waits */
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(used_idx(&g, TXQ), <, CHAINS);
    g_autoptr(GPtrArray) sections = save_all(&a.m);
    vm_fini(&a);
    g_autofree uint8_t *got = g_malloc(TOTAL + 1);
    size_t n = client_read(client, got, TOTAL + 1, 200); /* what the source wrote, up to its hangup */
    close(client);
    g_assert_cmpuint(n, >, 0);
    g_assert_cmpuint(n, <, TOTAL);

    Vm b;
    vm_init(&b, &g, argv);
    client = unix_client(path);
    for (int i = 0; i < 100; i++) { /* the chardev accepts the client */
        g_main_context_iteration(NULL, FALSE);
        g_usleep(100);
    }
    load_all(&b.m, sections);
    n += client_read(client, got + n, TOTAL + 1 - n, 1000);
    g_assert_cmpuint(n, ==, TOTAL);
    g_assert_cmpmem(got, n, data, TOTAL);
    ITERATE_UNTIL(used_idx(&g, TXQ) == CHAINS);
    g_assert_cmpuint(used_idx(&g, TXQ), ==, CHAINS);
    close(client);
    vm_fini(&b);
    g_unlink(path);
    g_rmdir(dir);
    g_free(g.ram);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/devstate/legacy/round-trip", test_legacy_round_trip);
    g_test_add_func("/devstate/legacy/refusals", test_legacy_refusals);
    g_test_add_func("/devstate/virtio-rng/round-trip", test_rng_round_trip);
    g_test_add_func("/devstate/virtio/refusals", test_virtio_refusals);
    g_test_add_func("/devstate/virtio-blk/round-trip", test_blk_round_trip);
    g_test_add_func("/devstate/virtio-net/round-trip", test_net_round_trip);
    g_test_add_func("/devstate/virtio-console/round-trip", test_console_round_trip);
    g_test_add_func("/devstate/virtio-console/output-resumes", test_console_output_resumes);
    return g_test_run();
}
