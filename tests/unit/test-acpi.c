/*
 * The pc machine's ACPI tables, checked structurally and by Debian's iasl
 * disassembler, and the ACPI PM device driven through the port I/O map.
 */
#include "hw/acpi/acpi-table.h"
#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/pm.h"
#include "util/error.h"
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

/* ---- tables ---- */

typedef struct {
    GByteArray *blob;
    uint64_t base;
} Blob;

/* The bytes at guest address @gpa, asserting [gpa, gpa + len) is in the blob. */
static const uint8_t *at(const Blob *b, uint64_t gpa, size_t len)
{
    g_assert_cmpuint(gpa, >=, b->base);
    g_assert_cmpuint(gpa - b->base + len, <=, b->blob->len);
    return b->blob->data + (gpa - b->base);
}

static const AcpiTableHeader *table_at(const Blob *b, uint64_t gpa, const char *sig)
{
    const AcpiTableHeader *h = (const void *)at(b, gpa, sizeof(*h));
    uint32_t len = GUINT32_FROM_LE(h->length);
    g_assert_cmpmem(h->signature, 4, sig, 4);
    g_assert_cmpuint(len, >=, sizeof(*h));
    at(b, gpa, len);
    g_assert_cmpuint(acpi_checksum(h, len), ==, 0);
    return h;
}

typedef struct {
    const char *file;
    const void *data;
    size_t len;
} TableFile;

static void run_iasl(const char *dir, const TableFile *t)
{
    g_autofree char *path = g_build_filename(dir, t->file, NULL);
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_set_contents(path, t->data, t->len, &err));
    g_assert_no_error(err);

    const char *argv[] = { "iasl", "-d", t->file, NULL };
    g_autofree char *out = NULL, *errout = NULL;
    int status = 0;
    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                               &errout, &status, &err));
    g_assert_no_error(err);
    g_autofree char *all = g_strconcat(out, errout, NULL);
    if (!g_spawn_check_wait_status(status, &err)) {
        g_test_message("iasl -d %s:\n%s", t->file, all);
    }
    g_assert_no_error(err);
    g_assert_nonnull(strstr(all, "Binary file appears to be a valid ACPI table"));

    g_autofree char *dsl_name = g_strdup(t->file);
    strcpy(strrchr(dsl_name, '.'), ".dsl");
    g_autofree char *dsl_path = g_build_filename(dir, dsl_name, NULL);
    g_autofree char *dsl = NULL;
    g_assert_true(g_file_get_contents(dsl_path, &dsl, NULL, &err));
    g_assert_no_error(err);

    /*
     * The disassembler reports problems inline ("ACPI Error", "Warning",
     * "Incorrect checksum") and may end with counts: those must be 0.
     */
    g_autofree char *both = g_strconcat(all, dsl, NULL);
    g_autoptr(GRegex) counts = g_regex_new("([0-9]+) (errors?|warnings?|error\\(s\\)|warning\\(s\\))",
                                           G_REGEX_CASELESS, 0, &err);
    g_assert_no_error(err);
    g_autoptr(GMatchInfo) mi = NULL;
    for (g_regex_match(counts, both, 0, &mi); g_match_info_matches(mi); g_match_info_next(mi, NULL)) {
        g_autofree char *n = g_match_info_fetch(mi, 1);
        g_assert_cmpstr(n, ==, "0");
    }
    g_autofree char *rest = g_regex_replace_literal(counts, both, -1, 0, "", 0, &err);
    g_assert_no_error(err);
    static const char *const bad[] = { "Error", "error", "Warning", "warning", "Incorrect",
                                       "Invalid", "Unknown" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *hit = strstr(rest, bad[i]);
        if (hit) {
            g_test_message("%s: unexpected \"%s\" in: %.80s", t->file, bad[i], hit);
        }
        g_assert_null(hit);
    }
    if (g_str_equal(t->file, "dsdt.dat")) {
        static const char *const needles[] = { "_S5_", "PNP0C0C", "_PRT", "PNP0501", "PNP0A03",
                                               "PNP0B00", "PNP0303", "ACPI0007", "_E00" };
        for (size_t i = 0; i < G_N_ELEMENTS(needles); i++) {
            g_assert_nonnull(strstr(dsl, needles[i]));
        }
    }
}

static void remove_dir(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    g_rmdir(dir);
}

static void check_madt(const AcpiTableHeader *h, unsigned ncpus)
{
    const AcpiMadt *madt = (const void *)h;
    g_assert_cmphex(GUINT32_FROM_LE(madt->local_apic_address), ==, 0xfee00000);
    g_assert_cmphex(GUINT32_FROM_LE(madt->flags), ==, ACPI_MADT_PCAT_COMPAT);
    const uint8_t *p = (const uint8_t *)(madt + 1), *end = (const uint8_t *)h + h->length;
    unsigned lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
    while (p < end) {
        g_assert_cmpuint(p[1], >=, 2);
        g_assert_cmpuint(p + p[1] - (const uint8_t *)h, <=, h->length);
        switch (p[0]) {
        case ACPI_MADT_LOCAL_APIC: {
            const AcpiMadtLocalApic *l = (const void *)p;
            g_assert_cmpuint(l->processor_uid, ==, lapics);
            g_assert_cmpuint(l->apic_id, ==, lapics);
            g_assert_cmpuint(GUINT32_FROM_LE(l->flags), ==, 1);
            lapics++;
            break;
        }
        case ACPI_MADT_IO_APIC: {
            const AcpiMadtIoApic *io = (const void *)p;
            g_assert_cmpuint(io->id, ==, ncpus);
            g_assert_cmphex(GUINT32_FROM_LE(io->address), ==, 0xfec00000);
            g_assert_cmpuint(GUINT32_FROM_LE(io->gsi_base), ==, 0);
            ioapics++;
            break;
        }
        case ACPI_MADT_INT_OVERRIDE: {
            const AcpiMadtIntOverride *iso = (const void *)p;
            if (iso->source == 0) {
                g_assert_cmpuint(GUINT32_FROM_LE(iso->gsi), ==, 2);
                g_assert_cmphex(GUINT16_FROM_LE(iso->flags), ==, 0);
            } else {
                g_assert_cmpuint(iso->source, ==, 9);
                g_assert_cmpuint(GUINT32_FROM_LE(iso->gsi), ==, 9);
                g_assert_cmphex(GUINT16_FROM_LE(iso->flags), ==, 0xd); /* level, high */
            }
            overrides++;
            break;
        }
        case ACPI_MADT_LOCAL_APIC_NMI: {
            const AcpiMadtLocalApicNmi *nmi = (const void *)p;
            g_assert_cmpuint(nmi->processor_uid, ==, 0xff);
            g_assert_cmpuint(nmi->lint, ==, 1);
            nmis++;
            break;
        }
        default:
            g_assert_not_reached();
        }
        p += p[1];
    }
    g_assert_true(p == end);
    g_assert_cmpuint(lapics, ==, ncpus);
    g_assert_cmpuint(ioapics, ==, 1);
    g_assert_cmpuint(overrides, ==, 2);
    g_assert_cmpuint(nmis, ==, 1);
}

static void check_fadt(const AcpiFadt *f)
{
    g_assert_cmpuint(GUINT32_FROM_LE(f->header.length), ==, 276);
    g_assert_cmpuint(f->header.revision, ==, 6);
    g_assert_cmpuint(GUINT16_FROM_LE(f->sci_int), ==, 9);
    g_assert_cmpuint(GUINT32_FROM_LE(f->smi_cmd), ==, 0);
    g_assert_cmphex(GUINT32_FROM_LE(f->pm1a_evt_blk), ==, 0x600);
    g_assert_cmphex(GUINT32_FROM_LE(f->pm1a_cnt_blk), ==, 0x604);
    g_assert_cmphex(GUINT32_FROM_LE(f->pm_tmr_blk), ==, 0x608);
    g_assert_cmphex(GUINT32_FROM_LE(f->gpe0_blk), ==, 0xafe0);
    g_assert_cmphex(GUINT64_FROM_LE(f->x_pm1a_evt_blk.address), ==, 0x600);
    g_assert_cmphex(GUINT64_FROM_LE(f->x_gpe0_blk.address), ==, 0xafe0);
    g_assert_cmpuint(f->x_pm_tmr_blk.bit_width, ==, 32);
    uint32_t flags = GUINT32_FROM_LE(f->flags);
    uint32_t want = ACPI_FADT_WBINVD | ACPI_FADT_PROC_C1 | ACPI_FADT_PWR_BUTTON |
                    ACPI_FADT_SLP_BUTTON | ACPI_FADT_TMR_VAL_EXT | ACPI_FADT_RESET_REG_SUP;
    g_assert_cmphex(flags & want, ==, want);
    g_assert_cmphex(flags & ACPI_FADT_HW_REDUCED, ==, 0);
    g_assert_cmphex(GUINT16_FROM_LE(f->iapc_boot_arch), ==, 3);
    g_assert_cmpuint(f->reset_reg.space_id, ==, ACPI_GAS_SYSTEM_IO);
    g_assert_cmphex(GUINT64_FROM_LE(f->reset_reg.address), ==, 0xcf9);
    g_assert_cmphex(f->reset_value, ==, 6);
    g_assert_cmphex(GUINT32_FROM_LE(f->dsdt), ==, GUINT64_FROM_LE(f->x_dsdt));
    g_assert_cmphex(GUINT32_FROM_LE(f->firmware_ctrl), ==, GUINT64_FROM_LE(f->x_firmware_ctrl));
}

/* One allocation: segment 0, buses 0..ecam_buses-1 at ecam_base. */
static void check_mcfg(const AcpiTableHeader *h, const AcpiPcConfig *cfg)
{
    g_assert_cmpuint(h->length, ==, sizeof(AcpiMcfg) + sizeof(AcpiMcfgAllocation));
    g_assert_cmpuint(h->revision, ==, 1);
    AcpiMcfgAllocation a;
    memcpy(&a, (const uint8_t *)h + sizeof(AcpiMcfg), sizeof(a));
    g_assert_cmphex(GUINT64_FROM_LE(a.base_address), ==, cfg->ecam_base);
    g_assert_cmpuint(GUINT16_FROM_LE(a.segment), ==, 0);
    g_assert_cmpuint(a.start_bus, ==, 0);
    g_assert_cmpuint(a.end_bus, ==, cfg->ecam_buses - 1);
}

/* The disassembled DSDT reserves the ECAM window as a motherboard resource. */
static void check_ecam_dsl(const char *dir, const AcpiPcConfig *cfg)
{
    g_autofree char *path = g_build_filename(dir, "dsdt.dsl", NULL), *dsl = NULL;
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_get_contents(path, &dsl, NULL, &err));
    g_assert_no_error(err);
    g_assert_nonnull(strstr(dsl, "PNP0C02"));
    const char *fixed = strstr(dsl, "Memory32Fixed (ReadOnly,");
    g_assert_nonnull(fixed);
    g_autofree char *base = g_strdup_printf("0x%08" G_GINT64_MODIFIER "X,", cfg->ecam_base);
    g_assert_nonnull(strstr(fixed, base));
    g_autofree char *len = g_strdup_printf("0x%08X,", cfg->ecam_buses << 20);
    g_assert_nonnull(strstr(fixed, len));
}

static void check_config(const AcpiPcConfig *cfg)
{
    Blob b = { .base = ACPI_PC_TABLES_GPA };
    uint64_t rsdp_gpa = 0;
    g_autoptr(GByteArray) blob = acpi_build_pc(cfg, b.base, &rsdp_gpa);
    b.blob = blob;
    g_assert_cmpuint(blob->len, <=, ACPI_PC_TABLES_SIZE);
    g_assert_cmpuint(rsdp_gpa % 16, ==, 0);

    const AcpiRsdp *rsdp = (const void *)at(&b, rsdp_gpa, sizeof(*rsdp));
    g_assert_cmpmem(rsdp->signature, 8, "RSD PTR ", 8);
    g_assert_cmpuint(rsdp->revision, ==, 2);
    g_assert_cmpuint(GUINT32_FROM_LE(rsdp->length), ==, sizeof(*rsdp));
    g_assert_cmpuint(acpi_checksum(rsdp, 20), ==, 0);
    g_assert_cmpuint(acpi_checksum(rsdp, sizeof(*rsdp)), ==, 0);

    g_autoptr(GArray) files = g_array_new(FALSE, FALSE, sizeof(TableFile));
    const AcpiTableHeader *xsdt = table_at(&b, GUINT64_FROM_LE(rsdp->xsdt_address), "XSDT");
    TableFile xf = { "xsdt.dat", xsdt, xsdt->length };
    g_array_append_val(files, xf);
    size_t n = (xsdt->length - sizeof(*xsdt)) / 8;
    g_assert_cmpuint(n, ==, cfg->ecam_buses ? 3 : 2);

    const AcpiTableHeader *rsdt = NULL;
    if (rsdp->rsdt_address) {
        rsdt = table_at(&b, GUINT32_FROM_LE(rsdp->rsdt_address), "RSDT");
        g_assert_cmpuint((rsdt->length - sizeof(*rsdt)) / 4, ==, n);
        TableFile rf = { "rsdt.dat", rsdt, rsdt->length };
        g_array_append_val(files, rf);
    }

    bool seen_fadt = false, seen_madt = false, seen_mcfg = false;
    for (size_t i = 0; i < n; i++) {
        uint64_t gpa;
        memcpy(&gpa, (const uint8_t *)(xsdt + 1) + 8 * i, 8);
        gpa = GUINT64_FROM_LE(gpa);
        if (rsdt) {
            uint32_t gpa32;
            memcpy(&gpa32, (const uint8_t *)(rsdt + 1) + 4 * i, 4);
            g_assert_cmphex(GUINT32_FROM_LE(gpa32), ==, gpa);
        }
        const AcpiTableHeader *h = (const void *)at(&b, gpa, sizeof(*h));
        if (!memcmp(h->signature, "FACP", 4)) {
            const AcpiFadt *f = (const void *)table_at(&b, gpa, "FACP");
            check_fadt(f);
            TableFile ff = { "facp.dat", f, sizeof(*f) };
            g_array_append_val(files, ff);

            const AcpiTableHeader *dsdt = table_at(&b, GUINT64_FROM_LE(f->x_dsdt), "DSDT");
            g_assert_cmpuint(dsdt->revision, ==, 2);
            TableFile df = { "dsdt.dat", dsdt, dsdt->length };
            g_array_append_val(files, df);

            uint64_t facs_gpa = GUINT64_FROM_LE(f->x_firmware_ctrl);
            g_assert_cmpuint(facs_gpa % 64, ==, 0);
            const AcpiFacs *facs = (const void *)at(&b, facs_gpa, sizeof(AcpiFacs));
            g_assert_cmpmem(facs->signature, 4, "FACS", 4);
            g_assert_cmpuint(GUINT32_FROM_LE(facs->length), ==, 64);
            TableFile sf = { "facs.dat", facs, sizeof(*facs) };
            g_array_append_val(files, sf);
            seen_fadt = true;
        } else if (!memcmp(h->signature, "MCFG", 4)) {
            const AcpiTableHeader *mcfg = table_at(&b, gpa, "MCFG");
            check_mcfg(mcfg, cfg);
            TableFile cf = { "mcfg.dat", mcfg, mcfg->length };
            g_array_append_val(files, cf);
            seen_mcfg = true;
        } else {
            const AcpiTableHeader *madt = table_at(&b, gpa, "APIC");
            check_madt(madt, cfg->ncpus);
            TableFile mf = { "apic.dat", madt, madt->length };
            g_array_append_val(files, mf);
            seen_madt = true;
        }
    }
    g_assert_true(seen_fadt && seen_madt);
    g_assert_true(seen_mcfg == (cfg->ecam_buses != 0));

    g_autofree char *iasl = g_find_program_in_path("iasl");
    if (!iasl) {
        g_test_skip("iasl not installed (acpica-tools)");
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-acpi-XXXXXX", &err);
    g_assert_no_error(err);
    for (guint i = 0; i < files->len; i++) {
        run_iasl(dir, &g_array_index(files, TableFile, i));
    }
    if (cfg->ecam_buses) {
        check_ecam_dsl(dir, cfg);
    }
    remove_dir(dir);
}

static void test_tables_1cpu(void)
{
    AcpiPcConfig cfg = { .ncpus = 1, .pci_mmio32_start = 0x20000000 };
    check_config(&cfg);
}

static void test_tables_2cpu(void)
{
    AcpiPcConfig cfg = { .ncpus = 2, .pci_mmio32_start = 0x80000000 };
    check_config(&cfg);
}

static void test_tables_8cpu(void)
{
    AcpiPcConfig cfg = {
        .ncpus = 8,
        .pci_mmio32_start = 0xc0000000,
        .pci_mmio64_start = 0x180000000ull,
        .pci_mmio64_size = 32ull << 30,
    };
    check_config(&cfg);
}

static void test_tables_ecam(void)
{
    AcpiPcConfig cfg = {
        .ncpus = 2,
        .pci_mmio32_start = 0xb0000000,
        .pci_mmio64_start = 0x200000000ull,
        .pci_mmio64_size = 32ull << 30,
        .ecam_base = 0xb0000000,
        .ecam_buses = 1,
    };
    check_config(&cfg);
}

static void test_tables_max_cpus(void)
{
    AcpiPcConfig cfg = { .ncpus = ACPI_PC_MAX_CPUS, .pci_mmio32_start = 0xc0000000 };
    check_config(&cfg);
}

/* ---- PM device ---- */

typedef struct {
    Machine m;
    ShutdownCause cause;
    unsigned shutdowns;
    bool sci;
    unsigned sci_line;
} PmRig;

static void record_shutdown(Machine *m, ShutdownCause cause)
{
    PmRig *r = (PmRig *)m;
    r->cause = cause;
    r->shutdowns++;
}

static void record_sci(void *opaque, unsigned line, bool level)
{
    PmRig *r = opaque;
    r->sci = level;
    r->sci_line = line;
}

static AcpiPm *rig_init(PmRig *r)
{
    *r = (PmRig){ .m = { .pio = io_map_new("pio"), .request_shutdown = record_shutdown } };
    g_autoptr(GError) err = NULL;
    IrqLine sci = { record_sci, r, ACPI_PM_SCI_IRQ };
    AcpiPm *pm = acpi_pm_new(&r->m, sci, &err);
    g_assert_no_error(err);
    g_assert_nonnull(pm);
    return pm;
}

static void rig_fini(PmRig *r, AcpiPm *pm)
{
    acpi_pm_free(pm);
    io_map_free(r->m.pio);
}

static void out(PmRig *r, uint16_t port, uint32_t v, unsigned len)
{
    uint8_t data[4];
    for (unsigned i = 0; i < 4; i++) {
        data[i] = v >> (8 * i);
    }
    g_assert_true(io_map_dispatch(r->m.pio, port, data, len, true));
}

static uint32_t in(PmRig *r, uint16_t port, unsigned len)
{
    uint8_t data[4] = { 0 };
    g_assert_true(io_map_dispatch(r->m.pio, port, data, len, false));
    return data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
}

#define PM1_CNT_SLP_EN (1u << 13)

static void test_pm_poweroff(void)
{
    PmRig r;
    AcpiPm *pm = rig_init(&r);
    g_assert_cmphex(in(&r, ACPI_PM_CNT_PORT, 2) & 1, ==, 1); /* SCI_EN */

    /* An unsupported sleep type (S3-like) is ignored. */
    out(&r, ACPI_PM_CNT_PORT, 1u << 10 | PM1_CNT_SLP_EN, 2);
    g_assert_cmpuint(r.shutdowns, ==, 0);
    /* SLP_TYP alone does nothing; SLP_EN reads as 0. */
    out(&r, ACPI_PM_CNT_PORT, ACPI_PM_SLP_TYP_S5 << 10, 2);
    g_assert_cmpuint(r.shutdowns, ==, 0);
    g_assert_cmphex(in(&r, ACPI_PM_CNT_PORT, 2), ==, ACPI_PM_SLP_TYP_S5 << 10 | 1);

    out(&r, ACPI_PM_CNT_PORT, ACPI_PM_SLP_TYP_S5 << 10 | PM1_CNT_SLP_EN, 2);
    g_assert_cmpuint(r.shutdowns, ==, 1);
    g_assert_cmpint(r.cause, ==, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);

    /* A byte write to the high half works as well. */
    out(&r, ACPI_PM_CNT_PORT + 1, (ACPI_PM_SLP_TYP_S5 << 2) | (PM1_CNT_SLP_EN >> 8), 1);
    g_assert_cmpuint(r.shutdowns, ==, 2);
    rig_fini(&r, pm);
}

static void test_pm_power_button(void)
{
    PmRig r;
    AcpiPm *pm = rig_init(&r);

    /* Not enabled yet: status latches, no SCI. */
    acpi_pm_press_power_button(pm);
    g_assert_false(r.sci);
    g_assert_cmphex(in(&r, ACPI_PM_GPE0_PORT, 1), ==, 1);

    /* The guest enables GPE 0 (a byte write at GPE0_EN): SCI rises. */
    out(&r, ACPI_PM_GPE0_PORT + 2, 1, 1);
    g_assert_true(r.sci);
    g_assert_cmpuint(r.sci_line, ==, 9);
    g_assert_cmphex(in(&r, ACPI_PM_GPE0_PORT, 4), ==, 0x00010001);

    /* Writing 0 leaves the status alone; writing 1 clears it. */
    out(&r, ACPI_PM_GPE0_PORT, 0, 1);
    g_assert_true(r.sci);
    out(&r, ACPI_PM_GPE0_PORT, 1, 1);
    g_assert_false(r.sci);
    g_assert_cmphex(in(&r, ACPI_PM_GPE0_PORT, 1), ==, 0);
    g_assert_cmphex(in(&r, ACPI_PM_GPE0_PORT + 2, 1), ==, 1);

    /* Pressed again while enabled: SCI at once; disabling drops it. */
    acpi_pm_press_power_button(pm);
    g_assert_true(r.sci);
    out(&r, ACPI_PM_GPE0_PORT + 2, 0, 2);
    g_assert_false(r.sci);
    out(&r, ACPI_PM_GPE0_PORT + 2, 1, 2);
    g_assert_true(r.sci);

    acpi_pm_reset(pm);
    g_assert_false(r.sci);
    g_assert_cmphex(in(&r, ACPI_PM_GPE0_PORT, 4), ==, 0);

    /* PM1: enables read back, status stays clear, no SCI from them. */
    out(&r, ACPI_PM_EVT_PORT + 2, 0x0121, 2);
    g_assert_cmphex(in(&r, ACPI_PM_EVT_PORT, 4), ==, 0x01210000);
    g_assert_false(r.sci);
    rig_fini(&r, pm);
}

static void test_pm_timer(void)
{
    PmRig r;
    AcpiPm *pm = rig_init(&r);
    uint32_t t0 = in(&r, ACPI_PM_TMR_PORT, 4);
    g_usleep(2000);
    uint32_t t1 = in(&r, ACPI_PM_TMR_PORT, 4);
    /* 2 ms is about 7159 ticks; allow for a slow, busy host. */
    g_assert_cmpuint(t1 - t0, >=, 7000);
    g_assert_cmpuint(t1 - t0, <, ACPI_PM_TIMER_HZ * 10u);
    rig_fini(&r, pm);
}

static void test_pm_ports_taken(void)
{
    PmRig r;
    AcpiPm *pm = rig_init(&r);
    g_autoptr(GError) err = NULL;
    IrqLine sci = { record_sci, &r, ACPI_PM_SCI_IRQ };
    g_assert_null(acpi_pm_new(&r.m, sci, &err));
    g_assert_error(err, VIREO_ERROR, VIREO_ERROR_INVALID);
    /* The failed device left the first one's regions alone. */
    g_assert_cmphex(in(&r, ACPI_PM_CNT_PORT, 2) & 1, ==, 1);
    rig_fini(&r, pm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi/tables/1cpu-512m", test_tables_1cpu);
    g_test_add_func("/acpi/tables/2cpu", test_tables_2cpu);
    g_test_add_func("/acpi/tables/8cpu-5g", test_tables_8cpu);
    g_test_add_func("/acpi/tables/ecam", test_tables_ecam);
    g_test_add_func("/acpi/tables/max-cpus", test_tables_max_cpus);
    g_test_add_func("/acpi/pm/poweroff", test_pm_poweroff);
    g_test_add_func("/acpi/pm/power-button", test_pm_power_button);
    g_test_add_func("/acpi/pm/timer", test_pm_timer);
    g_test_add_func("/acpi/pm/ports-taken", test_pm_ports_taken);
    return g_test_run();
}
