#define G_LOG_DOMAIN "acpi"
#include "hw/acpi/pm.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <time.h>

/* PM1_CNT bits (ACPI 6.x, 4.8.3.2.1). */
#define PM1_CNT_SCI_EN (1u << 0)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN (1u << 13)
/* Bits that read back what was written: BM_RLD and SLP_TYP. */
#define PM1_CNT_RW_MASK ((1u << 1) | PM1_CNT_SLP_TYP_MASK)
/* PM1_EN bits the spec defines: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN. */
#define PM1_EN_MASK 0x0721

#define NSEC_PER_SEC 1000000000ull

/*
 * PM1_EVT and GPE0 share one layout: a status half that is write-1-to-clear
 * followed by an enable half of the same width.
 */
typedef struct {
    AcpiPm *pm;
    uint16_t sts, en;
    uint16_t en_mask;
} StsEnBlock;

struct AcpiPm {
    Machine *machine;
    IrqLine sci;
    bool sci_level;
    StsEnBlock pm1, gpe0;
    uint16_t pm1_cnt;
    uint64_t timer_base_ticks;
    uint64_t timer_saved; /* the PM timer's count when its state was saved */
    bool warned_sleep;
};

static void update_sci(AcpiPm *pm)
{
    bool level = (pm->pm1.sts & pm->pm1.en) || (pm->gpe0.sts & pm->gpe0.en);
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_set(&pm->sci, level);
    }
}

/* Byte lanes [offset, offset + size) of a 32-bit register block. */
static uint32_t lane_mask(uint64_t offset, unsigned size)
{
    g_assert(offset + size <= 4);
    uint32_t m = size == 4 ? UINT32_MAX : (1u << (8 * size)) - 1;
    return m << (8 * offset);
}

static uint64_t sts_en_read(void *opaque, uint64_t offset, unsigned size)
{
    StsEnBlock *blk = opaque;
    uint32_t v = blk->sts | (uint32_t)blk->en << 16;
    return (v & lane_mask(offset, size)) >> (8 * offset);
}

static void sts_en_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    StsEnBlock *blk = opaque;
    uint32_t mask = lane_mask(offset, size);
    uint32_t v = ((uint32_t)value << (8 * offset)) & mask;
    blk->sts &= ~(uint16_t)v;
    uint16_t en_mask = (mask >> 16) & blk->en_mask;
    blk->en = (blk->en & ~en_mask) | ((v >> 16) & en_mask);
    update_sci(blk->pm);
}

static const IoRegionOps sts_en_ops = {
    .read = sts_en_read,
    .write = sts_en_write,
    .min_size = 1,
    .max_size = 4,
};

static uint64_t cnt_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPm *pm = opaque;
    /* There is no SMI_CMD to switch modes: the SCI is always enabled. */
    uint32_t v = pm->pm1_cnt | PM1_CNT_SCI_EN;
    return (v & lane_mask(offset, size)) >> (8 * offset);
}

static void sleep_requested(AcpiPm *pm, unsigned slp_typ)
{
    if (slp_typ == ACPI_PM_SLP_TYP_S5) {
        g_debug("guest entered S5");
        pm->machine->request_shutdown(pm->machine, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
        return;
    }
    /* The DSDT only declares _S5, so another type is a confused guest. */
    if (!pm->warned_sleep) {
        pm->warned_sleep = true;
        g_message("ignoring unsupported sleep request (SLP_TYP %u)", slp_typ);
    }
}

static void cnt_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    AcpiPm *pm = opaque;
    uint32_t mask = lane_mask(offset, size);
    uint32_t v = ((uint32_t)value << (8 * offset)) & mask;
    uint32_t rw = mask & PM1_CNT_RW_MASK;
    pm->pm1_cnt = (pm->pm1_cnt & ~rw) | (v & rw);
    if (v & PM1_CNT_SLP_EN) {
        sleep_requested(pm, (pm->pm1_cnt & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT);
    }
}

static const IoRegionOps cnt_ops = {
    .read = cnt_read,
    .write = cnt_write,
    .min_size = 1,
    .max_size = 2,
};

static uint64_t host_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Split so that ns * Hz cannot overflow however long the host has run. */
    return (uint64_t)ts.tv_sec * ACPI_PM_TIMER_HZ +
           (uint64_t)ts.tv_nsec * ACPI_PM_TIMER_HZ / NSEC_PER_SEC;
}

static uint64_t tmr_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPm *pm = opaque;
    /* TMR_VAL_EXT: all 32 bits count. TMR_STS on carry is not modelled. */
    uint32_t v = (uint32_t)(host_ticks() - pm->timer_base_ticks);
    return (v & lane_mask(offset, size)) >> (8 * offset);
}

static const IoRegionOps tmr_ops = {
    .read = tmr_read,
    .min_size = 1,
    .max_size = 4,
};

/* ---- migration ---- */

/*
 * The PM timer is saved as its count and continues from there, as QEMU's
 * (which follows the VM clock, stopped while the VM is).
 */
static bool pm_pre_save(void *opaque, GError **err)
{
    AcpiPm *pm = opaque;
    pm->timer_saved = host_ticks() - pm->timer_base_ticks;
    return true;
}

static bool pm_post_load(void *opaque, int version, GError **err)
{
    AcpiPm *pm = opaque;
    pm->pm1.en &= pm->pm1.en_mask;
    pm->pm1_cnt &= PM1_CNT_RW_MASK;
    pm->timer_base_ticks = host_ticks() - pm->timer_saved;
    /* The destination's line starts low: drive it to what the registers say. */
    pm->sci_level = false;
    irq_set(&pm->sci, false);
    update_sci(pm);
    return true;
}

static const VMStateField sts_en_fields[] = {
    VMSTATE_UINT16(StsEnBlock, sts),
    VMSTATE_UINT16(StsEnBlock, en),
    VMSTATE_END,
};

static const VMStateDescription sts_en_vmsd = {
    .name = "acpi-pm/sts-en",
    .version = 1,
    .minimum_version = 1,
    .fields = sts_en_fields,
};

static const VMStateField pm_fields[] = {
    VMSTATE_STRUCT(AcpiPm, pm1, sts_en_vmsd, StsEnBlock),
    VMSTATE_STRUCT(AcpiPm, gpe0, sts_en_vmsd, StsEnBlock),
    VMSTATE_UINT16(AcpiPm, pm1_cnt),
    VMSTATE_UINT64(AcpiPm, timer_saved),
    VMSTATE_END,
};

static const VMStateDescription pm_vmsd = {
    .name = "acpi-pm",
    .version = 1,
    .minimum_version = 1,
    .fields = pm_fields,
    .pre_save = pm_pre_save,
    .post_load = pm_post_load,
};

typedef struct {
    uint16_t port, len;
    const IoRegionOps *ops;
    size_t opaque_offset; /* where in AcpiPm the handlers' opaque lives */
    const char *name;
} PmRegion;

static const PmRegion pm_regions[] = {
    { ACPI_PM_EVT_PORT, ACPI_PM_EVT_LEN, &sts_en_ops, offsetof(AcpiPm, pm1), "acpi-pm1-evt" },
    { ACPI_PM_CNT_PORT, ACPI_PM_CNT_LEN, &cnt_ops, 0, "acpi-pm1-cnt" },
    { ACPI_PM_TMR_PORT, ACPI_PM_TMR_LEN, &tmr_ops, 0, "acpi-pm-tmr" },
    { ACPI_PM_GPE0_PORT, ACPI_PM_GPE0_LEN, &sts_en_ops, offsetof(AcpiPm, gpe0), "acpi-gpe0" },
};

static void remove_regions(AcpiPm *pm, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        io_map_remove(pm->machine->pio, pm_regions[i].port);
    }
}

AcpiPm *acpi_pm_new(Machine *m, IrqLine sci, GError **err)
{
    g_assert(m && m->pio && m->request_shutdown);
    AcpiPm *pm = g_new0(AcpiPm, 1);
    pm->machine = m;
    pm->sci = sci;
    pm->pm1 = (StsEnBlock){ .pm = pm, .en_mask = PM1_EN_MASK };
    pm->gpe0 = (StsEnBlock){ .pm = pm, .en_mask = UINT16_MAX };
    pm->timer_base_ticks = host_ticks();

    for (size_t i = 0; i < G_N_ELEMENTS(pm_regions); i++) {
        const PmRegion *r = &pm_regions[i];
        if (!io_map_add(m->pio, r->port, r->len, r->ops, (char *)pm + r->opaque_offset, r->name,
                        err)) {
            remove_regions(pm, i);
            g_free(pm);
            return NULL;
        }
    }
    vmstate_register(m, "acpi-pm", 0, &pm_vmsd, pm);
    return pm;
}

void acpi_pm_free(AcpiPm *pm)
{
    if (!pm) {
        return;
    }
    vmstate_unregister(pm->machine, pm);
    remove_regions(pm, G_N_ELEMENTS(pm_regions));
    g_free(pm);
}

void acpi_pm_reset(AcpiPm *pm)
{
    pm->pm1.sts = pm->pm1.en = 0;
    pm->gpe0.sts = pm->gpe0.en = 0;
    pm->pm1_cnt = 0;
    pm->sci_level = false;
    irq_set(&pm->sci, false);
}

void acpi_pm_press_power_button(AcpiPm *pm)
{
    pm->gpe0.sts |= 1u << ACPI_PM_GPE_PWRBTN;
    update_sci(pm);
}
