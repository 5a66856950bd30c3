/*
 * Just enough ACPI to power off: RSDP -> XSDT/RSDT -> FADT -> PM1a_CNT (or,
 * on hardware-reduced ACPI, the sleep control register) and the DSDT's \_S5
 * package.  Table offsets follow the ACPI specification.
 */
#include "libguest.h"

#define SDT_HEADER_LEN 36

/* FADT field offsets. */
#define FADT_DSDT 40
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_X_DSDT 140
#define FADT_X_PM1A_CNT_BLK 172     /* Generic Address Structure, 12 bytes */
#define FADT_X_PM_TMR_BLK 208       /* GAS */
#define FADT_SLEEP_CONTROL_REG 244  /* GAS; hardware-reduced ACPI only */

#define GAS_SPACE_MEMORY 0
#define GAS_SPACE_IO 1

#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_EN (1u << 13)
#define SLEEP_CONTROL_SLP_TYP_SHIFT 2
#define SLEEP_CONTROL_SLP_EN (1u << 5)

#define PM_TMR_HZ 3579545u
#define PM_TMR_MASK 0xffffffu       /* 24 bits are always implemented */

/* AML opcodes met in a \_S5 package. */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_PACKAGE_OP 0x12
#define AML_ROOT_CHAR 0x5c

static uint32_t rd16(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
    return rd16(p) | rd16(p + 2) << 16;
}

/* A 64-bit address this 32-bit guest can reach, or 0. */
static uint32_t rd_addr64(const uint8_t *p)
{
    return rd32(p + 4) ? 0 : rd32(p);
}

static bool checksum_ok(const uint8_t *p, uint32_t len)
{
    uint8_t sum = 0;
    while (len--) {
        sum += *p++;
    }
    return sum == 0;
}

static bool rsdp_ok(const uint8_t *p)
{
    if (memcmp(p, "RSD PTR ", 8) || !checksum_ok(p, 20)) {
        return false;
    }
    /* Revision 2 and later add a length and an extended checksum. */
    return p[15] < 2 || (rd32(p + 20) >= 36 && checksum_ok(p, rd32(p + 20)));
}

static uint32_t rsdp_scan(uint32_t start, uint32_t len)
{
    for (uint32_t a = start; a + 20 <= start + len; a += 16) {
        if (rsdp_ok(phys(a))) {
            return a;
        }
    }
    return 0;
}

/* The table at addr if its header, signature and checksum are sound. */
static const uint8_t *sdt_get(uint32_t addr, const char *sig)
{
    const uint8_t *t = phys(addr);
    if (!addr || memcmp(t, sig, 4) || rd32(t + 4) < SDT_HEADER_LEN ||
        !checksum_ok(t, rd32(t + 4))) {
        return NULL;
    }
    return t;
}

/* Value of the integer AML term at *p: ZeroOp, OneOp or a prefixed constant. */
static bool aml_int(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    switch (p < end ? p[0] : 0xff) {
    case AML_ZERO_OP:
        *v = 0;
        return true;
    case AML_ONE_OP:
        *v = 1;
        return true;
    case AML_BYTE_PREFIX:
        if (p + 2 > end) {
            return false;
        }
        *v = p[1];
        return true;
    case AML_WORD_PREFIX:
        if (p + 3 > end) {
            return false;
        }
        *v = rd16(p + 1);
        return true;
    case AML_DWORD_PREFIX:
        if (p + 5 > end) {
            return false;
        }
        *v = rd32(p + 1);
        return true;
    default:
        return false;
    }
}

/*
 * Find "Name (_S5, Package () { SLP_TYPa, ... })" in the DSDT:
 * NameOp ['\'] "_S5_" PackageOp PkgLength NumElements element...
 */
static const char *s5_parse(const uint8_t *dsdt, uint8_t *slp_typ)
{
    const uint8_t *body = dsdt + SDT_HEADER_LEN;
    const uint8_t *end = dsdt + rd32(dsdt + 4);

    for (const uint8_t *p = body; p + 4 <= end; p++) {
        if (p[0] != '_' || memcmp(p, "_S5_", 4)) {
            continue;
        }
        const uint8_t *op = p - 1;
        if (op >= body && *op == AML_ROOT_CHAR) {
            op--;
        }
        if (op < body || *op != AML_NAME_OP) {
            continue;               /* a reference to _S5, not its definition */
        }
        const uint8_t *q = p + 4;
        if (q >= end || *q++ != AML_PACKAGE_OP) {
            return "\\_S5 is not a package";
        }
        if (q >= end) {
            return "\\_S5 truncated";
        }
        q += 1 + (*q >> 6);         /* PkgLength: lead byte and 0-3 more */
        q++;                        /* NumElements */
        uint32_t v;
        if (!aml_int(q, end, &v)) {
            return "\\_S5 SLP_TYPa is not an integer constant";
        }
        *slp_typ = (uint8_t)(v & 7);
        return NULL;
    }
    return "no \\_S5 in the DSDT";
}

static const char *acpi_walk(const struct hvm_start_info *si, struct acpi_info *ai)
{
    if (si && si->rsdp_paddr) {
        uint32_t a = si->rsdp_paddr >> 32 ? 0 : (uint32_t)si->rsdp_paddr;
        if (!a || !rsdp_ok(phys(a))) {
            return "start_info rsdp_paddr does not point at a valid RSDP";
        }
        ai->rsdp = a;
        ai->rsdp_source = "start_info";
    } else {
        /* The first KiB of the EBDA, then the BIOS read-only area. */
        uint32_t ebda = rd16(phys(0x40e)) << 4;
        ai->rsdp = ebda ? rsdp_scan(ebda, 1024) : 0;
        if (!ai->rsdp) {
            ai->rsdp = rsdp_scan(0xe0000, 0x20000);
        }
        if (!ai->rsdp) {
            return "no RSDP";
        }
        ai->rsdp_source = "scan";
    }

    const uint8_t *rsdp = phys(ai->rsdp);
    const uint8_t *root = NULL;
    uint32_t entry_size = 4;
    ai->rsdp_revision = rsdp[15];
    if (rsdp[15] >= 2) {
        root = sdt_get(rd_addr64(rsdp + 24), "XSDT");
        entry_size = 8;
    }
    if (!root) {
        root = sdt_get(rd32(rsdp + 16), "RSDT");
        entry_size = 4;
    }
    if (!root) {
        return "no valid XSDT or RSDT";
    }

    const uint8_t *fadt = NULL;
    uint32_t n = (rd32(root + 4) - SDT_HEADER_LEN) / entry_size;
    for (uint32_t i = 0; i < n && !fadt; i++) {
        const uint8_t *e = root + SDT_HEADER_LEN + i * entry_size;
        fadt = sdt_get(entry_size == 8 ? rd_addr64(e) : rd32(e), "FACP");
    }
    if (!fadt) {
        return "no valid FADT";
    }
    ai->fadt = (uint32_t)(uintptr_t)fadt;
    uint32_t fadt_len = rd32(fadt + 4);

    /* The X_ fields win when present and non-zero. */
    if (fadt_len >= FADT_X_DSDT + 8 && rd_addr64(fadt + FADT_X_DSDT)) {
        ai->dsdt = rd_addr64(fadt + FADT_X_DSDT);
    } else if (fadt_len >= FADT_DSDT + 4) {
        ai->dsdt = rd32(fadt + FADT_DSDT);
    }
    const uint8_t *gas = fadt + FADT_X_PM1A_CNT_BLK;
    const uint8_t *sleep = fadt + FADT_SLEEP_CONTROL_REG;
    if (fadt_len >= FADT_X_PM1A_CNT_BLK + 12 && rd_addr64(gas + 4)) {
        if (gas[0] != GAS_SPACE_IO && gas[0] != GAS_SPACE_MEMORY) {
            return "X_PM1a_CNT_BLK is in an unsupported address space";
        }
        ai->mmio = gas[0] == GAS_SPACE_MEMORY;
        ai->pm1a_cnt = rd_addr64(gas + 4);
    } else if (fadt_len >= FADT_PM1A_CNT_BLK + 4 && rd32(fadt + FADT_PM1A_CNT_BLK)) {
        ai->pm1a_cnt = rd32(fadt + FADT_PM1A_CNT_BLK);
    } else if (fadt_len >= FADT_SLEEP_CONTROL_REG + 12 && rd_addr64(sleep + 4)) {
        if (sleep[0] != GAS_SPACE_IO && sleep[0] != GAS_SPACE_MEMORY) {
            return "SLEEP_CONTROL_REG is in an unsupported address space";
        }
        ai->mmio = sleep[0] == GAS_SPACE_MEMORY;
        ai->sleep_control = rd_addr64(sleep + 4);
    } else {
        return "FADT has neither PM1a_CNT_BLK nor SLEEP_CONTROL_REG";
    }

    const uint8_t *tmr = fadt + FADT_X_PM_TMR_BLK;
    if (fadt_len >= FADT_X_PM_TMR_BLK + 12 && rd_addr64(tmr + 4)) {
        if (tmr[0] == GAS_SPACE_IO && rd_addr64(tmr + 4) <= 0xffff) {
            ai->pm_tmr = (uint16_t)rd_addr64(tmr + 4);
        }
    } else if (fadt_len >= FADT_PM_TMR_BLK + 4 && rd32(fadt + FADT_PM_TMR_BLK) <= 0xffff) {
        ai->pm_tmr = (uint16_t)rd32(fadt + FADT_PM_TMR_BLK);
    }

    const uint8_t *dsdt = sdt_get(ai->dsdt, "DSDT");
    if (!dsdt) {
        return "no valid DSDT";
    }
    return s5_parse(dsdt, &ai->slp_typ);
}

const char *acpi_probe(const struct hvm_start_info *si, struct acpi_info *ai)
{
    /* The tables do not change: walk them once (checksums cost time). */
    static struct acpi_info cache;
    static const char *err;
    static bool done;

    if (!done) {
        err = acpi_walk(si, &cache);
        done = true;
    }
    *ai = cache;
    return err;
}

void acpi_poweroff(const struct acpi_info *ai)
{
    if (ai->pm1a_cnt) {
        uint16_t v = (uint16_t)(ai->slp_typ << PM1_CNT_SLP_TYP_SHIFT | PM1_CNT_SLP_EN);
        if (ai->mmio) {
            *(volatile uint16_t *)(uintptr_t)ai->pm1a_cnt = v;
        } else {
            outw((uint16_t)ai->pm1a_cnt, v);
        }
    } else {
        uint8_t v = (uint8_t)(ai->slp_typ << SLEEP_CONTROL_SLP_TYP_SHIFT | SLEEP_CONTROL_SLP_EN);
        if (ai->mmio) {
            *(volatile uint8_t *)(uintptr_t)ai->sleep_control = v;
        } else {
            outb((uint16_t)ai->sleep_control, v);
        }
    }

    if (ai->pm_tmr) {
        /* Two seconds, or until the timer looks stuck. */
        uint32_t last = inl(ai->pm_tmr) & PM_TMR_MASK, waited = 0, still = 0;
        while (waited < 2 * PM_TMR_HZ && still < 100000) {
            uint32_t now = inl(ai->pm_tmr) & PM_TMR_MASK;
            still = now == last ? still + 1 : 0;
            waited += (now - last) & PM_TMR_MASK;
            last = now;
        }
    } else {
        for (uint32_t i = 0; i < 50000000; i++) {
            __asm__ volatile("pause");
        }
    }
}
