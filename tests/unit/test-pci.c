/*
 * The PCI bus core and the PC's host: configuration through 0xCF8/0xCFC and
 * ECAM, BAR sizing and mapping, status and capability registers, INTx
 * routing and resource assignment, all through the machine's IoMaps.
 */
#include "hw/pci/pci-host.h"
#include "hw/pci/pci.h"
#include "util/error.h"
#include <string.h>

#define ECAM 0xb0000000ULL

typedef struct {
    Machine m;
    PciHost *host;
    PciBus *bus;
    unsigned resets;
    bool gsi_level[24];
} Rig;

typedef struct {
    PciDevice pci;
    unsigned accesses;
    uint64_t last_offset, last_value;
    int last_bar;
    unsigned mapped, unmapped;
} TestDev;

static void record_reset(Machine *m, ShutdownCause cause)
{
    g_assert_cmpint(cause, ==, SHUTDOWN_CAUSE_GUEST_RESET);
    ((Rig *)m)->resets++;
}

static void record_gsi(void *opaque, unsigned gsi, bool level)
{
    Rig *r = opaque;
    g_assert_cmpuint(gsi, <, G_N_ELEMENTS(r->gsi_level));
    r->gsi_level[gsi] = level;
}

static void rig_init(Rig *r, uint64_t mmio32_start)
{
    *r = (Rig){ .m = { .pio = io_map_new("pio"), .mmio = io_map_new("mmio"), .request_reset = record_reset } };
    PciBusConfig cfg = {
        .intx = { record_gsi, r, 0 },
        .io_start = 0xc000, .io_end = 0x10000,
        .mmio32_start = mmio32_start, .mmio32_end = 0xfec00000,
        .mmio64_start = 0x800000000ULL, .mmio64_end = 0x1000000000ULL,
    };
    g_autoptr(GError) err = NULL;
    r->host = pci_host_new(&r->m, &cfg, ECAM, &err);
    g_assert_no_error(err);
    r->bus = pci_host_bus(r->host);
}

static void rig_fini(Rig *r)
{
    pci_host_free(r->host);
    io_map_free(r->m.pio);
    io_map_free(r->m.mmio);
}

static void put(IoMap *map, uint64_t addr, uint64_t v, unsigned len)
{
    uint8_t data[8];
    for (unsigned i = 0; i < 8; i++) {
        data[i] = v >> (8 * i);
    }
    g_assert_true(io_map_dispatch(map, addr, data, len, true));
}

static uint64_t get(IoMap *map, uint64_t addr, unsigned len)
{
    uint8_t data[8] = { 0 };
    g_assert_true(io_map_dispatch(map, addr, data, len, false));
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)data[i] << (8 * i);
    }
    return v;
}

static uint32_t cf8_read(Rig *r, unsigned bus, uint8_t devfn, unsigned reg, unsigned size)
{
    put(r->m.pio, 0xcf8, 0x80000000u | bus << 16 | devfn << 8 | (reg & 0xfc), 4);
    return get(r->m.pio, 0xcfc + (reg & 3), size);
}

static void cf8_write(Rig *r, uint8_t devfn, unsigned reg, uint32_t v, unsigned size)
{
    put(r->m.pio, 0xcf8, 0x80000000u | devfn << 8 | (reg & 0xfc), 4);
    put(r->m.pio, 0xcfc + (reg & 3), v, size);
}

static uint32_t ecam_read(Rig *r, uint8_t devfn, unsigned reg, unsigned size)
{
    return get(r->m.mmio, ECAM + ((uint64_t)devfn << 12) + reg, size);
}

static void ecam_write(Rig *r, uint8_t devfn, unsigned reg, uint32_t v, unsigned size)
{
    put(r->m.mmio, ECAM + ((uint64_t)devfn << 12) + reg, v, size);
}

/* ---- the test device ---- */

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
    TestDev *d = opaque;
    d->accesses++;
    d->last_offset = offset;
    return 0x1234 + size;
}

static void bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    TestDev *d = opaque;
    (void)size;
    d->accesses++;
    d->last_offset = offset;
    d->last_value = value;
}

static const IoRegionOps bar_ops = { .read = bar_read, .write = bar_write, .min_size = 1, .max_size = 4 };

static void bar_mapped(PciDevice *dev, unsigned index, uint64_t addr, bool mapped)
{
    TestDev *d = container_of(dev, TestDev, pci);
    (void)addr;
    d->last_bar = index;
    if (mapped) {
        d->mapped++;
    } else {
        d->unmapped++;
    }
}

static const PciDeviceOps test_ops = { .bar_mapped = bar_mapped };

static void test_dev_init(Rig *r, TestDev *d, uint8_t devfn, uint8_t pin, bool extended)
{
    *d = (TestDev){ .last_bar = -1 };
    PciDeviceInfo info = {
        .vendor = 0x1af4, .device = 0x10ff, .class_code = 0xff0000, .revision = 1,
        .subsystem_vendor = 0x1af4, .subsystem = 0x0042, .intx_pin = pin, .extended = extended,
    };
    g_autofree char *name = g_strdup_printf("test-%02x.%x", devfn >> 3, devfn & 7);
    g_autoptr(GError) err = NULL;
    g_assert_true(pci_device_init(&d->pci, r->bus, devfn, &info, &test_ops, name, &err));
    g_assert_no_error(err);
}

/* ---- tests ---- */

static void test_config_access(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev d;
    test_dev_init(&r, &d, PCI_DEVFN(3, 0), 1, true);

    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(0, 0), 0, 4), ==, 0x12378086);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(1, 0), 0, 4), ==, 0x70008086);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1), ==, 0x80);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(1, 0), PCI_REVISION_ID, 4) >> 16, ==, 0x0601);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(3, 0), PCI_SUBSYSTEM_ID, 2), ==, 0x0042);

    const uint8_t devfns[] = { PCI_DEVFN(0, 0), PCI_DEVFN(1, 0), PCI_DEVFN(3, 0), PCI_DEVFN(5, 0),
                               PCI_DEVFN(3, 1) };
    for (size_t i = 0; i < G_N_ELEMENTS(devfns); i++) {
        for (unsigned reg = 0; reg < 0x40; reg++) {
            for (unsigned size = 1; size <= 4; size *= 2) {
                if (reg % size == 0) {
                    g_assert_cmphex(cf8_read(&r, 0, devfns[i], reg, size), ==, ecam_read(&r, devfns[i], reg, size));
                }
            }
        }
    }
    /* Absent functions and other buses read all ones. */
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(5, 0), PCI_VENDOR_ID, 2), ==, 0xffff);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(31, 7), PCI_VENDOR_ID, 2), ==, 0xffff);
    g_assert_cmphex(cf8_read(&r, 1, PCI_DEVFN(0, 0), PCI_VENDOR_ID, 4), ==, 0xffffffff);
    /* Extended space only through ECAM, and only where the function has it. */
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(3, 0), 0x100, 4), ==, 0);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(0, 0), 0x100, 4), ==, 0xffffffff);
    /* An 8-byte ECAM read is split into dwords: IDs, then command/status. */
    g_assert_cmphex(get(r.m.mmio, ECAM, 8), ==, (uint64_t)ecam_read(&r, 0, 4, 4) << 32 | 0x12378086);

    /* A write through one mechanism is seen by the other. */
    cf8_write(&r, PCI_DEVFN(3, 0), PCI_INTERRUPT_LINE, 0x0b, 1);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(3, 0), PCI_INTERRUPT_LINE, 1), ==, 0x0b);
    ecam_write(&r, PCI_DEVFN(3, 0), PCI_LATENCY_TIMER, 0x40, 1);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(3, 0), PCI_LATENCY_TIMER, 1), ==, 0x40);
    /* Identity is read-only. */
    ecam_write(&r, PCI_DEVFN(3, 0), PCI_VENDOR_ID, 0, 4);
    g_assert_cmphex(cf8_read(&r, 0, PCI_DEVFN(3, 0), PCI_VENDOR_ID, 4), ==, 0x10ff1af4);

    /* The reset control register keeps working beside the config ports. */
    put(r.m.pio, 0xcf9, 0x02, 1);
    g_assert_cmpuint(r.resets, ==, 0);
    g_assert_cmphex(get(r.m.pio, 0xcf9, 1), ==, 0x02);
    put(r.m.pio, 0xcf9, 0x06, 1);
    g_assert_cmpuint(r.resets, ==, 1);

    pci_device_cleanup(&d.pci);
    rig_fini(&r);
}

static void test_bar_sizing(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev d;
    test_dev_init(&r, &d, PCI_DEVFN(3, 0), 1, false);
    pci_device_add_bar(&d.pci, 0, 0x1000, PCI_BAR_MEM32, &bar_ops, &d);
    pci_device_add_bar(&d.pci, 1, 0x20, PCI_BAR_IO, &bar_ops, &d);
    pci_device_add_bar(&d.pci, 2, 1 << 20, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, &bar_ops, &d);
    pci_device_add_bar(&d.pci, 4, 8ULL << 30, PCI_BAR_MEM64, &bar_ops, &d);
    uint8_t fn = PCI_DEVFN(3, 0);

    g_assert_cmphex(ecam_read(&r, fn, PCI_BAR0, 4), ==, 0x0);
    g_assert_cmphex(ecam_read(&r, fn, PCI_BAR0 + 4, 4), ==, 0x1);
    g_assert_cmphex(ecam_read(&r, fn, PCI_BAR0 + 8, 4), ==, 0xc);
    for (unsigned reg = PCI_BAR0; reg < PCI_BAR0 + 24; reg += 4) {
        cf8_write(&r, fn, reg, 0xffffffff, 4);
    }
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0, 4), ==, 0xfffff000);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0 + 4, 4), ==, 0xffffffe1);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0 + 8, 4), ==, 0xfff0000c);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0 + 12, 4), ==, 0xffffffff);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0 + 16, 4), ==, 0x00000004);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_BAR0 + 20, 4), ==, 0xfffffffe);
    /* No expansion ROM: the register stays 0. */
    cf8_write(&r, fn, 0x30, 0xffffffff, 4);
    g_assert_cmphex(cf8_read(&r, 0, fn, 0x30, 4), ==, 0);
    /* Sizing with decoding off maps nothing. */
    g_assert_cmpuint(d.mapped, ==, 0);

    pci_device_cleanup(&d.pci);
    rig_fini(&r);
}

static bool reaches(IoMap *map, uint64_t addr, TestDev *d)
{
    unsigned before = d->accesses;
    uint8_t data[4] = { 0 };
    bool claimed = io_map_dispatch(map, addr, data, 4, false);
    return claimed && d->accesses == before + 1;
}

static void test_bar_mapping(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev d;
    test_dev_init(&r, &d, PCI_DEVFN(3, 0), 1, false);
    pci_device_add_bar(&d.pci, 0, 0x1000, PCI_BAR_MEM32, &bar_ops, &d);
    pci_device_add_bar(&d.pci, 1, 0x20, PCI_BAR_IO, &bar_ops, &d);
    uint8_t fn = PCI_DEVFN(3, 0);

    /* Programmed but not enabled: nothing decodes. */
    ecam_write(&r, fn, PCI_BAR0, 0xc0000000, 4);
    ecam_write(&r, fn, PCI_BAR0 + 4, 0xd000, 4);
    g_assert_false(reaches(r.m.mmio, 0xc0000000, &d));
    g_assert_false(reaches(r.m.pio, 0xd000, &d));
    g_assert_cmphex(pci_device_bar_address(&d.pci, 0), ==, PCI_BAR_UNMAPPED);

    /* The memory enable bit maps only the memory BAR. */
    ecam_write(&r, fn, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(reaches(r.m.mmio, 0xc0000010, &d));
    g_assert_cmphex(d.last_offset, ==, 0x10);
    g_assert_false(reaches(r.m.pio, 0xd000, &d));
    g_assert_cmpuint(d.mapped, ==, 1);
    g_assert_cmpint(d.last_bar, ==, 0);
    g_assert_cmphex(pci_device_bar_address(&d.pci, 0), ==, 0xc0000000);

    ecam_write(&r, fn, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
    g_assert_true(reaches(r.m.pio, 0xd004, &d));
    g_assert_cmphex(d.last_offset, ==, 4);
    put(r.m.pio, 0xd008, 0xab, 1);
    g_assert_cmphex(d.last_value, ==, 0xab);

    /* Moving a BAR remaps it: the new address reaches the device, the old one nothing. */
    ecam_write(&r, fn, PCI_BAR0, 0xc0100000, 4);
    g_assert_true(reaches(r.m.mmio, 0xc0100000, &d));
    g_assert_false(reaches(r.m.mmio, 0xc0000000, &d));
    g_assert_cmpuint(d.unmapped, ==, 1);
    cf8_write(&r, fn, PCI_BAR0 + 4, 0xe000, 4);
    g_assert_true(reaches(r.m.pio, 0xe000, &d));
    g_assert_false(reaches(r.m.pio, 0xd000, &d));

    /* A BAR over another region (ECAM here) is refused, logged once. */
    g_test_expect_message("pci", G_LOG_LEVEL_WARNING, "*not mapping*overlaps pci-ecam*");
    ecam_write(&r, fn, PCI_BAR0, (uint32_t)ECAM, 4);
    g_test_assert_expected_messages();
    g_assert_cmphex(pci_device_bar_address(&d.pci, 0), ==, PCI_BAR_UNMAPPED);
    ecam_write(&r, fn, PCI_BAR0 + 1, 0, 1); /* rewrite in place: no second warning */
    g_assert_false(reaches(r.m.mmio, 0xc0100000, &d));
    g_assert_cmphex(get(r.m.mmio, ECAM, 4), ==, 0x12378086); /* ECAM itself unharmed */
    ecam_write(&r, fn, PCI_BAR0, 0xc0200000, 4);
    g_assert_true(reaches(r.m.mmio, 0xc0200000, &d));

    /* Clearing the enables unmaps both. */
    cf8_write(&r, fn, PCI_COMMAND, 0, 2);
    g_assert_false(reaches(r.m.mmio, 0xc0200000, &d));
    g_assert_false(reaches(r.m.pio, 0xe000, &d));
    g_assert_cmphex(pci_device_bar_address(&d.pci, 1), ==, PCI_BAR_UNMAPPED);

    pci_device_cleanup(&d.pci);
    rig_fini(&r);
}

static void test_status_w1c(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev d;
    test_dev_init(&r, &d, PCI_DEVFN(3, 0), 1, false);
    uint8_t fn = PCI_DEVFN(3, 0);
    g_assert_cmphex(ecam_read(&r, fn, PCI_STATUS, 2), ==, PCI_STATUS_DEVSEL_MEDIUM);

    /* The device reports errors; the guest clears the ones it writes 1 to. */
    pci_set_word(d.pci.config + PCI_STATUS, PCI_STATUS_DEVSEL_MEDIUM | 0xf900);
    cf8_write(&r, fn, PCI_STATUS, 0, 2);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_STATUS, 2), ==, 0xfb00);
    cf8_write(&r, fn, PCI_STATUS, 0x2100 | PCI_STATUS_DEVSEL_MEDIUM | PCI_STATUS_CAP_LIST, 2);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_STATUS, 2), ==, 0xda00);
    /* A dword write to command leaves status alone unless its bits are 1. */
    cf8_write(&r, fn, PCI_COMMAND, PCI_COMMAND_MASTER, 4);
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_COMMAND, 4), ==, 0xda000000 | PCI_COMMAND_MASTER);
    ecam_write(&r, fn, PCI_STATUS + 1, 0xff, 1);
    g_assert_cmphex(ecam_read(&r, fn, PCI_STATUS, 2), ==, PCI_STATUS_DEVSEL_MEDIUM);

    pci_device_cleanup(&d.pci);
    rig_fini(&r);
}

static void test_capabilities(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev d;
    test_dev_init(&r, &d, PCI_DEVFN(3, 0), 1, false);
    uint8_t fn = PCI_DEVFN(3, 0);
    g_assert_cmphex(ecam_read(&r, fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, ==, 0);

    const struct { uint8_t id; unsigned size, offset; } caps[] = {
        { 0x09, 8, 0x40 }, { 0x05, 14, 0x48 }, { 0x11, 12, 0x58 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(caps); i++) {
        g_assert_cmpuint(pci_add_capability(&d.pci, caps[i].id, caps[i].size), ==, caps[i].offset);
    }
    g_assert_cmphex(cf8_read(&r, 0, fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, ==, PCI_STATUS_CAP_LIST);
    unsigned p = cf8_read(&r, 0, fn, PCI_CAPABILITY_LIST, 1), n = 0;
    while (p) {
        g_assert_cmpuint(n, <, G_N_ELEMENTS(caps));
        g_assert_cmpuint(p, ==, caps[n].offset);
        g_assert_cmpuint(p % 4, ==, 0);
        g_assert_cmphex(ecam_read(&r, fn, p, 1), ==, caps[n].id);
        p = ecam_read(&r, fn, p + 1, 1);
        n++;
    }
    g_assert_cmpuint(n, ==, G_N_ELEMENTS(caps));
    /* The list is read-only to the guest unless the device opens a field. */
    cf8_write(&r, fn, 0x40, 0, 4);
    g_assert_cmphex(cf8_read(&r, 0, fn, 0x40, 2), ==, 0x4809);
    d.pci.wmask[0x42] = 0xff;
    cf8_write(&r, fn, 0x40, 0x00770000, 4);
    g_assert_cmphex(cf8_read(&r, 0, fn, 0x40, 4), ==, 0x00774809);

    pci_device_cleanup(&d.pci);
    rig_fini(&r);
}

static void test_intx(void)
{
    Rig r;
    rig_init(&r, 0xc0000000);
    TestDev a, b, c;
    test_dev_init(&r, &a, PCI_DEVFN(3, 0), 1, false); /* INTA of slot 3: 16 + 3 */
    test_dev_init(&r, &b, PCI_DEVFN(2, 0), 2, false); /* INTB of slot 2: 16 + 3 too */
    test_dev_init(&r, &c, PCI_DEVFN(7, 1), 2, false); /* INTB of slot 7: 16 + 0 */
    g_assert_cmpuint(pci_device_gsi(&a.pci), ==, 19);
    g_assert_cmpuint(pci_device_gsi(&b.pci), ==, 19);
    g_assert_cmpuint(pci_device_gsi(&c.pci), ==, 16);
    g_assert_cmpuint(ecam_read(&r, PCI_DEVFN(2, 0), PCI_INTERRUPT_PIN, 1), ==, 2);
    cf8_write(&r, PCI_DEVFN(2, 0), PCI_INTERRUPT_PIN, 3, 1);
    g_assert_cmpuint(ecam_read(&r, PCI_DEVFN(2, 0), PCI_INTERRUPT_PIN, 1), ==, 2);

    pci_set_irq(&c.pci, true);
    g_assert_true(r.gsi_level[16]);
    pci_set_irq(&c.pci, false);
    g_assert_false(r.gsi_level[16]);

    /* A shared line stays up while any device holds it. */
    pci_set_irq(&a.pci, true);
    pci_set_irq(&b.pci, true);
    g_assert_true(r.gsi_level[19]);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(3, 0), PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==,
                    PCI_STATUS_INTERRUPT);
    pci_set_irq(&a.pci, false);
    g_assert_true(r.gsi_level[19]);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(3, 0), PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==, 0);
    pci_set_irq(&b.pci, false);
    g_assert_false(r.gsi_level[19]);

    /* INTX_DISABLE masks the pin; the status bit still shows the request. */
    pci_set_irq(&a.pci, true);
    cf8_write(&r, PCI_DEVFN(3, 0), PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
    g_assert_false(r.gsi_level[19]);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(3, 0), PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==,
                    PCI_STATUS_INTERRUPT);
    cf8_write(&r, PCI_DEVFN(3, 0), PCI_COMMAND, 0, 2);
    g_assert_true(r.gsi_level[19]);
    /* Leaving the bus lets go of the line. */
    pci_device_cleanup(&a.pci);
    g_assert_false(r.gsi_level[19]);

    pci_device_cleanup(&b.pci);
    pci_device_cleanup(&c.pci);
    rig_fini(&r);
}

static void test_assign_resources(void)
{
    Rig r;
    /* A 32-bit window starting just below ECAM: the allocator must skip it. */
    rig_init(&r, 0xaff00000);
    TestDev d1, d2;
    test_dev_init(&r, &d1, PCI_DEVFN(3, 0), 1, false);
    test_dev_init(&r, &d2, PCI_DEVFN(4, 0), 1, true);
    pci_device_add_bar(&d1.pci, 0, 0x20, PCI_BAR_IO, &bar_ops, &d1);
    pci_device_add_bar(&d1.pci, 1, 0x1000, PCI_BAR_MEM32, &bar_ops, &d1);
    pci_device_add_bar(&d1.pci, 2, 16 << 20, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, &bar_ops, &d1);
    pci_device_add_bar(&d2.pci, 0, 0x100, PCI_BAR_IO, &bar_ops, &d2);
    pci_device_add_bar(&d2.pci, 1, 1 << 20, PCI_BAR_MEM32, &bar_ops, &d2);
    pci_device_add_bar(&d2.pci, 2, 1 << 20, PCI_BAR_MEM32, &bar_ops, &d2);
    pci_device_add_bar(&d2.pci, 4, 0x4000, PCI_BAR_MEM64, &bar_ops, &d2);

    g_autoptr(GError) err = NULL;
    g_assert_true(pci_bus_assign_resources(r.bus, &err));
    g_assert_no_error(err);

    TestDev *devs[] = { &d1, &d2 };
    for (size_t n = 0; n < G_N_ELEMENTS(devs); n++) {
        PciDevice *dev = &devs[n]->pci;
        uint16_t cmd = ecam_read(&r, dev->devfn, PCI_COMMAND, 2);
        g_assert_cmphex(cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY), ==, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
        for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
            const PciBar *bar = &dev->bars[i];
            if (!bar->size) {
                continue;
            }
            uint64_t a = pci_device_bar_address(dev, i);
            g_test_message("%s BAR%u: 0x%" G_GINT64_MODIFIER "x +0x%" G_GINT64_MODIFIER "x", dev->name, i, a,
                           bar->size);
            g_assert_cmphex(a, !=, PCI_BAR_UNMAPPED);
            g_assert_cmphex(a % bar->size, ==, 0);
            /* The registers hold the address the map uses. */
            uint64_t reg = cf8_read(&r, 0, dev->devfn, PCI_BAR0 + 4 * i, 4) & ~0xfULL;
            if (bar->flags & PCI_BAR_IO) {
                reg = cf8_read(&r, 0, dev->devfn, PCI_BAR0 + 4 * i, 4) & ~0x3ULL;
                g_assert_cmphex(a, >=, 0xc000);
                g_assert_cmphex(a + bar->size, <=, 0x10000);
                g_assert_true(reaches(r.m.pio, a, devs[n]));
            } else if (bar->flags & PCI_BAR_MEM64) {
                reg |= (uint64_t)cf8_read(&r, 0, dev->devfn, PCI_BAR0 + 4 * i + 4, 4) << 32;
                g_assert_cmphex(a, >=, 0x800000000ULL);
                g_assert_cmphex(a + bar->size, <=, 0x1000000000ULL);
                g_assert_true(reaches(r.m.mmio, a, devs[n]));
            } else {
                g_assert_cmphex(a, >=, 0xaff00000);
                g_assert_cmphex(a + bar->size, <=, 0xfec00000);
                g_assert_true(a + bar->size <= ECAM || a >= ECAM + PCI_ECAM_BUS_SIZE);
                g_assert_true(reaches(r.m.mmio, a, devs[n]));
            }
            g_assert_cmphex(reg, ==, a);
        }
    }
    /* A reset unassigns everything, and the host's reset assigns it again. */
    uint64_t before = pci_device_bar_address(&d2.pci, 1);
    pci_bus_reset(r.bus);
    g_assert_cmphex(pci_device_bar_address(&d2.pci, 1), ==, PCI_BAR_UNMAPPED);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(4, 0), PCI_COMMAND, 2), ==, 0);
    pci_host_reset(r.host);
    g_assert_cmphex(pci_device_bar_address(&d2.pci, 1), ==, before);
    g_assert_cmphex(ecam_read(&r, PCI_DEVFN(0, 0), PCI_COMMAND, 2), ==, 0x7);

    /* What does not fit is an error naming the BAR. */
    TestDev big;
    test_dev_init(&r, &big, PCI_DEVFN(5, 0), 0, false);
    pci_device_add_bar(&big.pci, 0, 0x8000, PCI_BAR_IO, &bar_ops, &big);
    g_assert_false(pci_bus_assign_resources(r.bus, &err));
    g_assert_error(err, VIREO_ERROR, VIREO_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "test-05.0: BAR0"));

    pci_device_cleanup(&big.pci);
    pci_device_cleanup(&d1.pci);
    pci_device_cleanup(&d2.pci);
    rig_fini(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/config-access", test_config_access);
    g_test_add_func("/pci/bar-sizing", test_bar_sizing);
    g_test_add_func("/pci/bar-mapping", test_bar_mapping);
    g_test_add_func("/pci/status-w1c", test_status_w1c);
    g_test_add_func("/pci/capabilities", test_capabilities);
    g_test_add_func("/pci/intx", test_intx);
    g_test_add_func("/pci/assign-resources", test_assign_resources);
    return g_test_run();
}
