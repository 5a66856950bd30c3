/*
 * The x86 "pc" machine: RAM below and above the PCI hole, the legacy devices
 * of a PC, ACPI tables, the PCI host bridge, and a kernel loaded directly.
 *
 * A reset rebuilds the KVM VM over the same RAM: a fresh VM is exactly the
 * power-on state of every vCPU, LAPIC, IOAPIC, PIC and PIT, which resetting
 * each piece of in-kernel state by hand would only approximate.
 */
#define G_LOG_DOMAIN "pc"
#include "hw/i386/pc.h"
#include "accel/kvm.h"
#include "block/block.h"
#include "chardev/chardev.h"
#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/pm.h"
#include "hw/char/serial.h"
#include "hw/core/device.h"
#include "hw/i386/x86-boot.h"
#include "hw/input/i8042.h"
#include "hw/misc/port92.h"
#include "hw/pci/pci-host.h"
#include "hw/timer/rtc.h"
#include "migration/ram.h"
#include "net/net.h"
#include "system/options.h"
#include "target/i386/cpu-state.h"
#include "target/i386/cpu.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GiB (1ULL << 30)
#define MiB (1ULL << 20)
#define FOUR_GIB (4 * GiB)
/* As QEMU's pc: with 3.5 GiB or more, RAM below 4 GiB stops at 3 GiB. */
#define LOWMEM_MAX 0xe0000000ULL
#define LOWMEM_SPLIT 0xc0000000ULL
#define PCI_MMIO64_SIZE (32 * GiB)
#define KVM_PRIVATE_PAGES 0xfeffc000ULL /* identity map + TSS, see accel/kvm */

enum { GSI_COM1 = 4, GSI_RTC = 8, GSI_KBD = 1, GSI_MOUSE = 12, GSI_SCI = 9, COM1_PORT = 0x3f8 };

typedef struct PcMachine {
    Machine parent;
    const VmConfig *cfg;
    KvmVm *kvm;
    KvmVcpu **vcpus;
    unsigned nr_vcpus;
    /* Migratable state of the vCPUs and the in-kernel devices, pointing at the current KVM VM. */
    X86CpuState *cpu_state;
    X86KvmDevicesState kvm_devices;
    X86Topology topo;

    uint8_t *ram;
    uint64_t ram_size, below_4g, above_4g;
    E820Entry e820[8];
    unsigned e820_entries;
    GByteArray *acpi;
    uint64_t rsdp_gpa;
    GBytes *kernel, *initrd;

    Chardev *serial_chr;
    Serial *serial;
    Rtc *rtc;
    I8042 *i8042;
    Port92 *port92;
    AcpiPm *pm;
    PciHost *pci;
    DeviceContext devices; /* -device and the devices other options imply */
    GPtrArray *unused_netdevs; /* NetClient: -netdev no device uses (QEMU opens them too) */
} PcMachine;

static PcMachine *pc_of(Machine *m)
{
    return (PcMachine *)m;
}

static void pc_set_irq(void *opaque, unsigned gsi, bool level)
{
    PcMachine *pc = opaque;
    if (pc->kvm) { /* none between two VMs of a reset */
        kvm_vm_set_irq(pc->kvm, gsi, level);
    }
}

static IrqLine pc_irq(PcMachine *pc, unsigned gsi)
{
    return (IrqLine){ pc_set_irq, pc, gsi };
}

/*
 * The fast paths belong to the current KVM VM. A reset unbinds every device
 * (PCI reset) before the VM goes, and devices bind again to the new one.
 */
static int pc_msi_bind(Machine *m, int fd, uint64_t addr, uint32_t data, GError **err)
{
    PcMachine *pc = pc_of(m);
    int gsi = kvm_vm_msi_route_add(pc->kvm, addr, data, err);
    if (gsi >= 0 && !kvm_vm_irqfd(pc->kvm, fd, gsi, true, err)) {
        kvm_vm_msi_route_remove(pc->kvm, gsi);
        return -1;
    }
    return gsi;
}

static bool pc_msi_rebind(Machine *m, int handle, uint64_t addr, uint32_t data, GError **err)
{
    return kvm_vm_msi_route_update(pc_of(m)->kvm, handle, addr, data, err);
}

static void pc_msi_unbind(Machine *m, int handle, int fd)
{
    PcMachine *pc = pc_of(m);
    g_autoptr(GError) err = NULL;
    if (!pc->kvm) {
        return;
    }
    if (!kvm_vm_irqfd(pc->kvm, fd, handle, false, &err)) {
        g_warning("%s", err->message);
    }
    kvm_vm_msi_route_remove(pc->kvm, handle);
}

static void pc_send_msi(Machine *m, uint64_t addr, uint32_t data)
{
    PcMachine *pc = pc_of(m);
    if (pc->kvm) {
        kvm_vm_signal_msi(pc->kvm, addr, data);
    }
}

static bool pc_ioeventfd(Machine *m, int fd, uint64_t addr, unsigned len, bool assign, GError **err)
{
    return kvm_vm_ioeventfd(pc_of(m)->kvm, fd, addr, len, assign, err);
}

static unsigned pc_vcpu_footprint(Machine *m, GuestSpan *out, unsigned max)
{
    PcMachine *pc = pc_of(m);
    unsigned n = 0;
    for (unsigned i = 0; i < pc->nr_vcpus && n < max; i++) {
        n += x86_vcpu_footprint(m, &pc->cpu_state[i], out + n, max - n);
    }
    return n;
}

static bool pc_dirty_log_start(Machine *m, GError **err)
{
    return kvm_vm_dirty_log_start(pc_of(m)->kvm, err);
}

static bool pc_dirty_log_sync(Machine *m, MachineDirtyFn fn, void *opaque, GError **err)
{
    return kvm_vm_dirty_log_sync(pc_of(m)->kvm, fn, opaque, err);
}

static void pc_dirty_log_stop(Machine *m)
{
    kvm_vm_dirty_log_stop(pc_of(m)->kvm);
}

static void *pc_gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    PcMachine *pc = pc_of(m);
    if (gpa + len < gpa) {
        return NULL;
    }
    if (gpa + len <= pc->below_4g) {
        return pc->ram + gpa;
    }
    if (gpa >= FOUR_GIB && gpa + len <= FOUR_GIB + pc->above_4g) {
        return pc->ram + pc->below_4g + (gpa - FOUR_GIB);
    }
    return NULL;
}

static void add_e820(PcMachine *pc, uint64_t addr, uint64_t size, uint32_t type)
{
    g_assert(pc->e820_entries < G_N_ELEMENTS(pc->e820));
    pc->e820[pc->e820_entries++] = (E820Entry){ addr, size, type };
}

static bool alloc_ram(PcMachine *pc, GError **err)
{
    /*
     * Private anonymous memory with transparent huge pages, as QEMU's default
     * backend: a shared memfd faults in 4 KiB at a time (shmem gets no THP by
     * default), which made a 5 GiB guest boot twice as slow in the rig.
     */
    pc->ram = mmap(NULL, pc->ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pc->ram == MAP_FAILED) {
        pc->ram = NULL;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "-m: cannot map %" G_GUINT64_FORMAT " MiB of RAM: %s",
                    pc->ram_size >> 20, g_strerror(errno));
        return false;
    }
    madvise(pc->ram, pc->ram_size, MADV_HUGEPAGE);
    return true;
}

/* The 64-bit PCI window: the first GiB boundary above RAM. */
static uint64_t pci_mmio64_start(const PcMachine *pc)
{
    return (FOUR_GIB + pc->above_4g + GiB - 1) & ~(GiB - 1);
}

static void build_memory_map(PcMachine *pc)
{
    pc->below_4g = pc->ram_size >= LOWMEM_MAX ? LOWMEM_SPLIT : pc->ram_size;
    /* ECAM sits below either split: RAM that would reach it continues above 4 GiB. */
    pc->below_4g = MIN(pc->below_4g, PCI_HOST_ECAM_BASE);
    pc->above_4g = pc->ram_size - pc->below_4g;
    add_e820(pc, 0, 0x9fc00, E820_RAM);
    add_e820(pc, 0x9fc00, 0x400, E820_RESERVED);
    add_e820(pc, ACPI_PC_TABLES_GPA, ACPI_PC_TABLES_SIZE, E820_RESERVED);
    add_e820(pc, MiB, pc->below_4g - MiB, E820_RAM);
    add_e820(pc, PCI_HOST_ECAM_BASE, PCI_ECAM_BUS_SIZE, E820_RESERVED);
    add_e820(pc, KVM_PRIVATE_PAGES, 4 * 4096, E820_RESERVED);
    if (pc->above_4g) {
        add_e820(pc, FOUR_GIB, pc->above_4g, E820_RAM);
    }
}

/* The KVM half of the machine: made at start and again at every reset. */
static bool create_kvm(PcMachine *pc, GError **err)
{
    pc->kvm = kvm_vm_new(&pc->parent, NULL, 0, err);
    if (!pc->kvm || !kvm_vm_create_x86_irqchip(pc->kvm, err) ||
        !kvm_vm_add_ram(pc->kvm, 0, pc->below_4g, pc->ram, err) ||
        (pc->above_4g && !kvm_vm_add_ram(pc->kvm, FOUR_GIB, pc->above_4g, pc->ram + pc->below_4g, err))) {
        return false;
    }
    for (unsigned i = 0; i < pc->nr_vcpus; i++) {
        pc->vcpus[i] = kvm_vcpu_new(pc->kvm, i, err);
        if (!pc->vcpus[i] || !x86_cpu_setup(pc->vcpus[i], &pc->topo, err)) {
            return false;
        }
        pc->cpu_state[i].vcpu = pc->vcpus[i];
    }
    pc->kvm_devices.vm = pc->kvm;
    /* A reset during a live migration: the new VM logs too, and all of RAM may have changed. */
    if (pc->parent.vcpu_log && !kvm_vm_dirty_log_start(pc->kvm, err)) {
        return false;
    }
    if (g_atomic_int_get(&pc->parent.dirty_tracking)) {
        ram_mark_dirty(&pc->parent, pc->ram, pc->ram_size);
    }
    return true;
}

/*
 * What a migration carries besides the devices' own state: the vCPUs first
 * (their LAPICs), then the in-kernel PIC, IOAPIC, PIT and clock, then RAM.
 */
static void register_migration_state(PcMachine *pc)
{
    Machine *m = &pc->parent;
    for (unsigned i = 0; i < pc->nr_vcpus; i++) {
        vmstate_register(m, "cpu", i, &x86_cpu_vmsd, &pc->cpu_state[i]);
    }
    vmstate_register(m, "kvm-x86-devices", 0, &x86_kvm_devices_vmsd, &pc->kvm_devices);
    ram_block_register(m, "pc.ram", pc->ram, pc->ram_size);
}

static void destroy_kvm(PcMachine *pc)
{
    for (unsigned i = 0; i < pc->nr_vcpus; i++) {
        g_clear_pointer(&pc->vcpus[i], kvm_vcpu_free);
    }
    g_clear_pointer(&pc->kvm, kvm_vm_free);
}

/*
 * Everything a power-on puts in RAM, and the boot vCPU's registers. Not for
 * -incoming: the stream replaces both (and the kernel's copy cost 60 ms of
 * a restore's start in the test rig, most of it the kernel clearing pages).
 */
static bool load_boot_image(PcMachine *pc, GError **err)
{
    memcpy(pc->ram + ACPI_PC_TABLES_GPA, pc->acpi->data, pc->acpi->len);
    X86BootInfo info = {
        .machine = &pc->parent,
        .e820 = pc->e820,
        .e820_entries = pc->e820_entries,
        .ram_below_4g = pc->below_4g,
        .rsdp_gpa = pc->rsdp_gpa,
        .kernel_path = pc->cfg->kernel,
        .kernel = pc->kernel,
        .initrd = pc->initrd,
        .cmdline = pc->cfg->append ? pc->cfg->append : "",
    };
    X86BootState boot = { 0 };
    return x86_load_kernel(&info, &boot, err) && x86_cpu_set_boot_state(pc->vcpus[0], &boot, err);
}

static bool read_file(const char *option, const char *path, GBytes **out, GError **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s %s: %s", option, path, g_strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s %s: not a regular file", option, path);
        close(fd);
        return false;
    }
    g_autoptr(GError) local = NULL;
    g_autoptr(GMappedFile) f = g_mapped_file_new_from_fd(fd, FALSE, &local);
    close(fd);
    if (!f) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s %s: %s", option, path, local->message);
        return false;
    }
    *out = g_mapped_file_get_bytes(f);
    return true;
}

static const char *serial_spec(const VmConfig *cfg)
{
    if (cfg->serials->len > 0) {
        return g_ptr_array_index(cfg->serials, 0);
    }
    /* As QEMU: -nographic puts the first serial port on stdio unless -nodefaults. */
    return cfg->nographic && !cfg->nodefaults ? "stdio" : NULL;
}

static bool create_devices(PcMachine *pc, GError **err)
{
    Machine *m = &pc->parent;
    /* Sections load in registration order: the vCPUs and in-kernel devices before any device. */
    register_migration_state(pc);
    const char *spec = serial_spec(pc->cfg);
    if (spec && strcmp(spec, "none") != 0) {
        /* Errors name the spec or the chardev; a chardev:ID exists (vm_config_parse checked). */
        pc->serial_chr = g_str_has_prefix(spec, "chardev:")
                             ? chardev_open(vm_config_find_chardev(pc->cfg, spec + strlen("chardev:")), err)
                             : chardev_new(spec, err);
        if (!pc->serial_chr) {
            return false;
        }
        pc->serial = serial_new(m, COM1_PORT, pc_irq(pc, GSI_COM1), pc->serial_chr, err);
        if (!pc->serial) {
            return false;
        }
    }
    pc->rtc = rtc_new(m, pc_irq(pc, GSI_RTC), err);
    pc->i8042 = pc->rtc ? i8042_new(m, pc_irq(pc, GSI_KBD), pc_irq(pc, GSI_MOUSE), err) : NULL;
    pc->port92 = pc->i8042 ? port92_new(m, err) : NULL;
    pc->pm = pc->port92 ? acpi_pm_new(m, pc_irq(pc, GSI_SCI), err) : NULL;
    PciBusConfig pci = {
        .intx = pc_irq(pc, 0), /* the bus puts the GSI in .line */
        .io_start = 0xc000,
        .io_end = 0x10000,
        .mmio32_start = pc->below_4g,
        .mmio32_end = ACPI_PC_PCI_MMIO32_END + 1ULL,
        .mmio64_start = pci_mmio64_start(pc),
        .mmio64_end = pci_mmio64_start(pc) + PCI_MMIO64_SIZE,
    };
    pc->pci = pc->pm ? pci_host_new(m, &pci, PCI_HOST_ECAM_BASE, err) : NULL;
    if (!pc->pci) {
        return false;
    }
    pc->devices = (DeviceContext){ m, pci_host_bus(pc->pci), pc->cfg, g_ptr_array_new() };
    if (!device_create_all(&pc->devices, pc->cfg->devices, err)) {
        return false;
    }
    /* As in QEMU, the disks -drive if=virtio implies come after the -device ones. */
    g_autoptr(GPtrArray) implied = block_drive_implied_devices(pc->cfg, err);
    if (!implied || !device_create_all(&pc->devices, implied, err)) {
        return false;
    }
    g_autoptr(GPtrArray) nics = net_nic_device_opts(pc->cfg, err);
    if (!nics || !device_create_all(&pc->devices, nics, err)) {
        return false;
    }
    pc->unused_netdevs = net_open_unused(pc->cfg, err);
    if (!pc->unused_netdevs) {
        return false;
    }
    /* CMOS memory size fields, for guests that still read them. */
    uint64_t ext_kb = MIN((pc->below_4g - MiB) >> 10, 0xffffULL);
    uint64_t high_64k = pc->below_4g > 16 * MiB ? MIN((pc->below_4g - 16 * MiB) >> 16, 0xffffULL) : 0;
    uint64_t above_64k = pc->above_4g >> 16;
    const uint8_t cmos[][2] = {
        { 0x15, 640 & 0xff }, { 0x16, 640 >> 8 },
        { 0x17, ext_kb }, { 0x18, ext_kb >> 8 }, { 0x30, ext_kb }, { 0x31, ext_kb >> 8 },
        { 0x34, high_64k }, { 0x35, high_64k >> 8 },
        { 0x5b, above_64k }, { 0x5c, above_64k >> 8 }, { 0x5d, above_64k >> 16 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cmos); i++) {
        rtc_cmos_set(pc->rtc, cmos[i][0], cmos[i][1]);
    }
    return true;
}

static void pc_destroy(Machine *m)
{
    PcMachine *pc = pc_of(m);
    if (!pc) {
        return;
    }
    g_clear_pointer(&pc->unused_netdevs, g_ptr_array_unref);
    /* Devices stop their threads and unbind from the VM before it goes. */
    if (pc->devices.created) {
        device_destroy_all(pc->devices.created);
        g_ptr_array_unref(pc->devices.created);
    }
    destroy_kvm(pc);
    pci_host_free(pc->pci);
    acpi_pm_free(pc->pm);
    port92_free(pc->port92);
    i8042_free(pc->i8042);
    rtc_free(pc->rtc);
    serial_free(pc->serial);
    chardev_free(pc->serial_chr);
    if (pc->acpi) {
        g_byte_array_unref(pc->acpi);
    }
    g_clear_pointer(&pc->kernel, g_bytes_unref);
    g_clear_pointer(&pc->initrd, g_bytes_unref);
    if (pc->ram) {
        munmap(pc->ram, pc->ram_size);
    }
    g_free(pc->vcpus);
    g_free(pc->cpu_state);
    machine_cleanup(m);
    g_free(pc);
}

static Machine *pc_create(const VmConfig *cfg, GError **err)
{
    if (!cfg->kernel) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "no kernel given: the pc machine boots a kernel directly (-kernel FILE)");
        return NULL;
    }
    if (cfg->smp_cpus > ACPI_PC_MAX_CPUS) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-smp %u: the pc machine supports at most %u vCPUs",
                    cfg->smp_cpus, ACPI_PC_MAX_CPUS);
        return NULL;
    }
    if (cfg->ram_size < 16 * MiB) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-m: the pc machine needs at least 16 MiB of RAM");
        return NULL;
    }
    PcMachine *pc = g_new0(PcMachine, 1);
    Machine *m = &pc->parent;
    machine_init(m);
    m->gpa_to_hva = pc_gpa_to_hva;
    m->msi_bind = pc_msi_bind;
    m->msi_rebind = pc_msi_rebind;
    m->msi_unbind = pc_msi_unbind;
    m->send_msi = pc_send_msi;
    m->ioeventfd = pc_ioeventfd;
    m->vcpu_footprint = pc_vcpu_footprint;
    m->dirty_log_start = pc_dirty_log_start;
    m->dirty_log_sync = pc_dirty_log_sync;
    m->dirty_log_stop = pc_dirty_log_stop;
    pc->cfg = cfg;
    pc->ram_size = cfg->ram_size;
    pc->nr_vcpus = cfg->smp_cpus;
    pc->topo = (X86Topology){ cfg->smp_cpus, cfg->sockets, cfg->cores, cfg->threads };
    pc->vcpus = g_new0(KvmVcpu *, pc->nr_vcpus);
    pc->cpu_state = g_new0(X86CpuState, pc->nr_vcpus);

    build_memory_map(pc);
    AcpiPcConfig acpi = {
        .ncpus = pc->nr_vcpus,
        .pci_mmio32_start = pc->below_4g,
        .pci_mmio64_start = pci_mmio64_start(pc),
        .pci_mmio64_size = PCI_MMIO64_SIZE,
        .ecam_base = PCI_HOST_ECAM_BASE,
        .ecam_buses = 1,
    };
    pc->acpi = acpi_build_pc(&acpi, ACPI_PC_TABLES_GPA, &pc->rsdp_gpa);

    if (!read_file("-kernel", cfg->kernel, &pc->kernel, err) || !x86_kernel_check(cfg->kernel, pc->kernel, err) ||
        (cfg->initrd && !read_file("-initrd", cfg->initrd, &pc->initrd, err)) || !alloc_ram(pc, err) ||
        !create_kvm(pc, err) || !create_devices(pc, err) ||
        !pci_bus_assign_resources(pci_host_bus(pc->pci), err) || (!cfg->incoming && !load_boot_image(pc, err))) {
        pc_destroy(m);
        return NULL;
    }
    return m;
}

static bool pc_reset(Machine *m, GError **err)
{
    PcMachine *pc = pc_of(m);
    /* Devices let go of the old VM's routes, irqfds and ioeventfds first. */
    pci_bus_reset(pci_host_bus(pc->pci));
    destroy_kvm(pc);
    if (!create_kvm(pc, err)) {
        return false;
    }
    if (pc->serial) {
        serial_reset(pc->serial);
    }
    rtc_reset(pc->rtc);
    i8042_reset(pc->i8042);
    port92_reset(pc->port92);
    acpi_pm_reset(pc->pm);
    pci_host_reset(pc->pci);
    return load_boot_image(pc, err);
}

static unsigned pc_vcpu_count(Machine *m)
{
    return pc_of(m)->nr_vcpus;
}

static KvmVcpu *pc_vcpu(Machine *m, unsigned index)
{
    return pc_of(m)->vcpus[index];
}

static void pc_powerdown(Machine *m)
{
    acpi_pm_press_power_button(pc_of(m)->pm);
}

const MachineType pc_machine_type = {
    .name = "pc",
    .desc = "Standard PC (i440FX + PIIX, 1996)",
    .create = pc_create,
    .reset = pc_reset,
    .destroy = pc_destroy,
    .vcpu_count = pc_vcpu_count,
    .vcpu = pc_vcpu,
    .powerdown = pc_powerdown,
};
