#define G_LOG_DOMAIN "acpi"
/*
 * ACPI tables of the x86 pc machine. The layout of the blob, from base_gpa:
 * RSDP, FACS (64-byte aligned), DSDT, FADT, MADT, MCFG (with ECAM), XSDT,
 * RSDT. To add a table, build it between the MADT and acpi_blob_finish() with
 * listed = true.
 */
#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/acpi-table.h"
#include "hw/acpi/aml.h"
#include "hw/acpi/pm.h"
#include <string.h>

#define PC_RESET_PORT 0xcf9
#define PC_RESET_VALUE 0x06
#define PC_PCI_CONFIG_PORT 0xcf8
#define PC_PCI_SLOTS 32
#define PC_PCI_FIRST_GSI 16 /* PCI INTx use IOAPIC pins 16..23 */
#define PC_PCI_GSIS 8
#define PC_ISA_BRIDGE_ADR 0x00010000 /* device 1, function 0 */

/* FADT 6.x layout; minor version 3 = ACPI 6.3, the MADT revision to match. */
#define PC_FADT_REVISION 6
#define PC_FADT_MINOR 3
#define PC_MADT_REVISION 5
#define PC_DSDT_REVISION 2 /* 64-bit integers */

/* P_LVLx latencies above these limits mean "C2/C3 not supported". */
#define PC_NO_C2_LATENCY 101
#define PC_NO_C3_LATENCY 1001

/* ---- FACS, FADT, MADT ---- */

static gsize build_facs(AcpiBlob *blob)
{
    AcpiFacs facs = {
        .length = GUINT32_TO_LE(sizeof(facs)),
        .version = 2,
    };
    memcpy(facs.signature, "FACS", 4);
    acpi_blob_align(blob, 64);
    gsize start = blob->data->len;
    g_byte_array_append(blob->data, (const guint8 *)&facs, sizeof(facs));
    return start;
}

static void put_table_body(AcpiBlob *blob, const void *table, size_t len)
{
    g_byte_array_append(blob->data, (const guint8 *)table + sizeof(AcpiTableHeader),
                        len - sizeof(AcpiTableHeader));
}

static void build_fadt(AcpiBlob *blob, gsize facs, gsize dsdt)
{
    uint64_t facs_gpa = acpi_blob_gpa(blob, facs), dsdt_gpa = acpi_blob_gpa(blob, dsdt);
    g_assert(facs_gpa <= UINT32_MAX && dsdt_gpa <= UINT32_MAX);
    AcpiFadt f = {
        .firmware_ctrl = GUINT32_TO_LE(facs_gpa),
        .dsdt = GUINT32_TO_LE(dsdt_gpa),
        .sci_int = GUINT16_TO_LE(ACPI_PM_SCI_IRQ),
        .smi_cmd = 0, /* ACPI mode is always on: no SMI_CMD, no enable handshake */
        .pm1a_evt_blk = GUINT32_TO_LE(ACPI_PM_EVT_PORT),
        .pm1a_cnt_blk = GUINT32_TO_LE(ACPI_PM_CNT_PORT),
        .pm_tmr_blk = GUINT32_TO_LE(ACPI_PM_TMR_PORT),
        .gpe0_blk = GUINT32_TO_LE(ACPI_PM_GPE0_PORT),
        .pm1_evt_len = ACPI_PM_EVT_LEN,
        .pm1_cnt_len = ACPI_PM_CNT_LEN,
        .pm_tmr_len = ACPI_PM_TMR_LEN,
        .gpe0_blk_len = ACPI_PM_GPE0_LEN,
        .p_lvl2_lat = GUINT16_TO_LE(PC_NO_C2_LATENCY),
        .p_lvl3_lat = GUINT16_TO_LE(PC_NO_C3_LATENCY),
        .iapc_boot_arch = GUINT16_TO_LE(ACPI_IAPC_LEGACY_DEVICES | ACPI_IAPC_8042),
        .flags = GUINT32_TO_LE(ACPI_FADT_WBINVD | ACPI_FADT_PROC_C1 | ACPI_FADT_PWR_BUTTON |
                               ACPI_FADT_SLP_BUTTON | ACPI_FADT_FIX_RTC |
                               ACPI_FADT_TMR_VAL_EXT | ACPI_FADT_RESET_REG_SUP),
        .reset_reg = acpi_gas_io(PC_RESET_PORT, 1, ACPI_GAS_ACCESS_BYTE),
        .reset_value = PC_RESET_VALUE,
        .minor_version = PC_FADT_MINOR,
        .x_firmware_ctrl = GUINT64_TO_LE(facs_gpa),
        .x_dsdt = GUINT64_TO_LE(dsdt_gpa),
        /* ACPICA splits PM1_EVT into 16-bit STS and EN halves; GPEs are bytes. */
        .x_pm1a_evt_blk = acpi_gas_io(ACPI_PM_EVT_PORT, ACPI_PM_EVT_LEN, ACPI_GAS_ACCESS_WORD),
        .x_pm1a_cnt_blk = acpi_gas_io(ACPI_PM_CNT_PORT, ACPI_PM_CNT_LEN, ACPI_GAS_ACCESS_WORD),
        .x_pm_tmr_blk = acpi_gas_io(ACPI_PM_TMR_PORT, ACPI_PM_TMR_LEN, ACPI_GAS_ACCESS_DWORD),
        .x_gpe0_blk = acpi_gas_io(ACPI_PM_GPE0_PORT, ACPI_PM_GPE0_LEN, ACPI_GAS_ACCESS_BYTE),
    };
    gsize start = acpi_table_begin(blob, "FACP", PC_FADT_REVISION);
    put_table_body(blob, &f, sizeof(f));
    acpi_table_end(blob, start, true);
}

static void build_madt(AcpiBlob *blob, const AcpiPcConfig *cfg)
{
    GByteArray *b = blob->data;
    AcpiMadt madt = {
        .local_apic_address = GUINT32_TO_LE(ACPI_PC_LAPIC_BASE),
        .flags = GUINT32_TO_LE(ACPI_MADT_PCAT_COMPAT),
    };
    gsize start = acpi_table_begin(blob, "APIC", PC_MADT_REVISION);
    put_table_body(blob, &madt, sizeof(madt));

    for (unsigned i = 0; i < cfg->ncpus; i++) {
        AcpiMadtLocalApic lapic = {
            .type = ACPI_MADT_LOCAL_APIC,
            .length = sizeof(lapic),
            .processor_uid = i,
            .apic_id = i,
            .flags = GUINT32_TO_LE(1), /* enabled */
        };
        g_byte_array_append(b, (const guint8 *)&lapic, sizeof(lapic));
    }

    AcpiMadtIoApic ioapic = {
        .type = ACPI_MADT_IO_APIC,
        .length = sizeof(ioapic),
        .id = cfg->ncpus,
        .address = GUINT32_TO_LE(ACPI_PC_IOAPIC_BASE),
        .gsi_base = 0,
    };
    g_byte_array_append(b, (const guint8 *)&ioapic, sizeof(ioapic));

    /* The PIT is wired to IOAPIC pin 2; the SCI is level, active high. */
    static const struct { uint8_t irq; uint32_t gsi; uint16_t flags; } overrides[] = {
        { 0, 2, ACPI_INTI_CONFORMING },
        { ACPI_PM_SCI_IRQ, ACPI_PM_SCI_IRQ, ACPI_INTI_LEVEL | ACPI_INTI_ACTIVE_HIGH },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(overrides); i++) {
        AcpiMadtIntOverride iso = {
            .type = ACPI_MADT_INT_OVERRIDE,
            .length = sizeof(iso),
            .bus = 0,
            .source = overrides[i].irq,
            .gsi = GUINT32_TO_LE(overrides[i].gsi),
            .flags = GUINT16_TO_LE(overrides[i].flags),
        };
        g_byte_array_append(b, (const guint8 *)&iso, sizeof(iso));
    }

    AcpiMadtLocalApicNmi nmi = {
        .type = ACPI_MADT_LOCAL_APIC_NMI,
        .length = sizeof(nmi),
        .processor_uid = 0xff, /* all processors */
        .flags = GUINT16_TO_LE(ACPI_INTI_CONFORMING),
        .lint = 1,
    };
    g_byte_array_append(b, (const guint8 *)&nmi, sizeof(nmi));
    acpi_table_end(blob, start, true);
}

static void build_mcfg(AcpiBlob *blob, const AcpiPcConfig *cfg)
{
    AcpiMcfg mcfg = { 0 };
    AcpiMcfgAllocation alloc = {
        .base_address = GUINT64_TO_LE(cfg->ecam_base),
        .segment = 0,
        .start_bus = 0,
        .end_bus = cfg->ecam_buses - 1,
    };
    gsize start = acpi_table_begin(blob, "MCFG", 1);
    put_table_body(blob, &mcfg, sizeof(mcfg));
    g_byte_array_append(blob->data, (const guint8 *)&alloc, sizeof(alloc));
    acpi_table_end(blob, start, true);
}

/* ---- DSDT ---- */

static void build_pci0_crs(GByteArray *b, const AcpiPcConfig *cfg)
{
    static const struct {
        unsigned width;
        AmlResType type;
        uint8_t flags;
        uint64_t min, max;
    } windows[] = {
        { 16, AML_RES_BUS, 0, 0x00, 0xff },
        { 16, AML_RES_IO, AML_RES_IO_ENTIRE_RANGE, 0x0000, 0x0cf7 },
        { 16, AML_RES_IO, AML_RES_IO_ENTIRE_RANGE, 0x0d00, 0xffff },
        { 32, AML_RES_MEMORY, AML_RES_MEM_READ_WRITE | AML_RES_MEM_CACHEABLE, 0xa0000, 0xbffff },
    };

    aml_name(b, "_CRS");
    gsize crs = aml_resource_template_begin(b);
    for (size_t i = 0; i < G_N_ELEMENTS(windows); i++) {
        aml_res_address(b, windows[i].width, windows[i].type, windows[i].flags, windows[i].min,
                        windows[i].max);
        if (windows[i].type == AML_RES_BUS) {
            /* The config ports belong to the bridge itself, not to its children. */
            aml_res_io(b, PC_PCI_CONFIG_PORT, 8);
        }
    }
    aml_res_address(b, 32, AML_RES_MEMORY, AML_RES_MEM_READ_WRITE, cfg->pci_mmio32_start,
                    ACPI_PC_PCI_MMIO32_END);
    if (cfg->pci_mmio64_size) {
        aml_res_address(b, 64, AML_RES_MEMORY, AML_RES_MEM_READ_WRITE | AML_RES_MEM_CACHEABLE,
                        cfg->pci_mmio64_start, cfg->pci_mmio64_start + cfg->pci_mmio64_size - 1);
    }
    aml_resource_template_end(b, crs);
}

/* APIC-mode routing: INTx of slot s, pin p goes to GSI 16 + (s + p) % 8. */
static void build_pci0_prt(GByteArray *b)
{
    aml_name(b, "_PRT");
    gsize prt = aml_package_begin(b, (PC_PCI_SLOTS - 1) * 4);
    for (unsigned slot = 1; slot < PC_PCI_SLOTS; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            gsize entry = aml_package_begin(b, 4);
            aml_integer(b, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
            aml_integer(b, pin);
            aml_integer(b, 0); /* no link device: the last field is a GSI */
            aml_integer(b, PC_PCI_FIRST_GSI + (slot + pin) % PC_PCI_GSIS);
            aml_end(b, entry);
        }
    }
    aml_end(b, prt);
}

static void build_isa(GByteArray *b)
{
    static const struct {
        const char *name, *hid;
        uint16_t ports[2]; /* 0: unused */
        uint8_t port_len;
        unsigned irq;
    } devs[] = {
        { "COM1", "PNP0501", { 0x3f8 }, 8, 4 },
        { "RTC", "PNP0B00", { 0x70 }, 2, 8 },
        { "KBD", "PNP0303", { 0x60, 0x64 }, 1, 1 },
    };

    gsize isa = aml_device_begin(b, "ISA");
    aml_name_int(b, "_ADR", PC_ISA_BRIDGE_ADR);
    for (size_t i = 0; i < G_N_ELEMENTS(devs); i++) {
        gsize dev = aml_device_begin(b, devs[i].name);
        aml_name_eisaid(b, "_HID", devs[i].hid);
        aml_name_int(b, "_UID", 1);
        aml_name(b, "_CRS");
        gsize crs = aml_resource_template_begin(b);
        for (size_t p = 0; p < G_N_ELEMENTS(devs[i].ports) && devs[i].ports[p]; p++) {
            aml_res_io(b, devs[i].ports[p], devs[i].port_len);
        }
        aml_res_irq(b, devs[i].irq);
        aml_resource_template_end(b, crs);
        aml_end(b, dev);
    }
    aml_end(b, isa);
}

static void build_pci0(GByteArray *b, const AcpiPcConfig *cfg)
{
    gsize pci = aml_device_begin(b, "PCI0");
    aml_name_eisaid(b, "_HID", "PNP0A03");
    aml_name_int(b, "_UID", 0);
    aml_name_int(b, "_ADR", 0);
    aml_name_int(b, "_BBN", 0);
    build_pci0_crs(b, cfg);
    build_pci0_prt(b);
    build_isa(b);
    aml_end(b, pci);
}

/*
 * Linux uses the MCFG's ECAM only if a motherboard resource reserves it
 * ("MMCONFIG ... reserved as ACPI motherboard resource").
 */
static void build_ecam_reservation(GByteArray *b, const AcpiPcConfig *cfg)
{
    gsize dev = aml_device_begin(b, "ECAM");
    aml_name_eisaid(b, "_HID", "PNP0C02");
    aml_name_int(b, "_UID", 0);
    aml_name(b, "_CRS");
    gsize crs = aml_resource_template_begin(b);
    aml_res_memory32_fixed(b, cfg->ecam_base, cfg->ecam_buses * ACPI_PC_ECAM_BUS_SIZE, false);
    aml_resource_template_end(b, crs);
    aml_end(b, dev);
}

static void build_cpus(GByteArray *b, const AcpiPcConfig *cfg)
{
    /* Processor devices; _UID matches the MADT's processor UID. */
    for (unsigned i = 0; i < cfg->ncpus; i++) {
        char name[5];
        g_snprintf(name, sizeof(name), "C%03X", i);
        gsize dev = aml_device_begin(b, name);
        aml_name_str(b, "_HID", "ACPI0007");
        aml_name_int(b, "_UID", i);
        aml_end(b, dev);
    }
}

static gsize build_dsdt(AcpiBlob *blob, const AcpiPcConfig *cfg)
{
    GByteArray *b = blob->data;
    gsize start = acpi_table_begin(blob, "DSDT", PC_DSDT_REVISION);

    gsize sb = aml_scope_begin(b, "\\_SB");
    build_pci0(b, cfg);
    if (cfg->ecam_buses) {
        build_ecam_reservation(b, cfg);
    }
    build_cpus(b, cfg);
    gsize pwrb = aml_device_begin(b, "PWRB");
    aml_name_eisaid(b, "_HID", "PNP0C0C");
    aml_end(b, pwrb);
    aml_end(b, sb);

    /* Edge-style handler: the device latches the status bit until cleared. */
    char gpe_method[5];
    g_snprintf(gpe_method, sizeof(gpe_method), "_E%02X", ACPI_PM_GPE_PWRBTN);
    gsize gpe = aml_scope_begin(b, "\\_GPE");
    gsize method = aml_method_begin(b, gpe_method, 0, false);
    aml_notify(b, "\\_SB.PWRB", 0x80); /* 0x80: button pressed */
    aml_end(b, method);
    aml_end(b, gpe);

    /* Only S5 is offered: SLP_TYPa, SLP_TYPb, two reserved. */
    aml_name(b, "\\_S5");
    gsize s5 = aml_package_begin(b, 4);
    aml_integer(b, ACPI_PM_SLP_TYP_S5);
    aml_integer(b, ACPI_PM_SLP_TYP_S5);
    aml_integer(b, 0);
    aml_integer(b, 0);
    aml_end(b, s5);

    acpi_table_end(blob, start, false);
    return start;
}

static void check_config(const AcpiPcConfig *cfg)
{
    g_assert(cfg->ncpus >= 1 && cfg->ncpus <= ACPI_PC_MAX_CPUS);
    g_assert(cfg->pci_mmio32_start > 0xbffff && cfg->pci_mmio32_start <= ACPI_PC_PCI_MMIO32_END);
    g_assert(cfg->pci_mmio64_size == 0 ||
             cfg->pci_mmio64_start + cfg->pci_mmio64_size - 1 > cfg->pci_mmio64_start);
    g_assert(cfg->ecam_buses <= 256);
    g_assert(cfg->ecam_buses == 0 || (cfg->ecam_base % ACPI_PC_ECAM_BUS_SIZE == 0 &&
                                      cfg->ecam_base + (uint64_t)cfg->ecam_buses * ACPI_PC_ECAM_BUS_SIZE <=
                                          1ULL << 32));
}

GByteArray *acpi_build_pc(const AcpiPcConfig *cfg, uint64_t base_gpa, uint64_t *rsdp_gpa)
{
    check_config(cfg);
    AcpiBlob blob;
    acpi_blob_init(&blob, base_gpa);
    gsize facs = build_facs(&blob);
    gsize dsdt = build_dsdt(&blob, cfg);
    build_fadt(&blob, facs, dsdt);
    build_madt(&blob, cfg);
    if (cfg->ecam_buses) {
        build_mcfg(&blob, cfg);
    }
    GByteArray *out = acpi_blob_finish(&blob, rsdp_gpa);
    g_assert(out->len <= ACPI_PC_TABLES_SIZE);
    return out;
}
