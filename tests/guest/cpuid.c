/* cpuid: what the VMM shows the guest through CPUID. */
#include "libguest.h"

const char guest_name[] = "cpuid";

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_HV_BASE 0x40000000u

/* Copy 4 register bytes into s, making them printable. */
static void reg_chars(char *s, uint32_t r)
{
    for (int i = 0; i < 4; i++, r >>= 8) {
        char c = (char)(r & 0xff);
        s[i] = c >= 0x20 && c < 0x7f ? c : (c ? '?' : '\0');
    }
}

int main(const struct hvm_start_info *si)
{
    char vendor[13] = { 0 }, hv[13] = { 0 };

    (void)si;

    struct cpuid_regs r = cpuid(0, 0);
    uint32_t max_leaf = r.eax;
    reg_chars(vendor, r.ebx);
    reg_chars(vendor + 4, r.edx);
    reg_chars(vendor + 8, r.ecx);
    guest_log("vendor=%s", vendor);
    guest_log("max_leaf=0x%x", max_leaf);
    if (max_leaf < 1) {
        guest_fail("max_leaf=0x%x, want >= 1", max_leaf);
    }

    r = cpuid(1, 0);
    uint32_t family = (r.eax >> 8) & 0xf;
    uint32_t model = (r.eax >> 4) & 0xf;
    if (family == 0xf) {
        family += (r.eax >> 20) & 0xff;
    }
    if (family == 6 || family >= 0xf) {
        model |= ((r.eax >> 16) & 0xf) << 4;
    }
    bool hv_bit = r.ecx & CPUID_1_ECX_HYPERVISOR;
    guest_log("family=%u model=%u stepping=%u", family, model, r.eax & 0xf);
    guest_log("apic_id=%u", r.ebx >> 24);
    guest_log("hypervisor_bit=%d", hv_bit);

    if (hv_bit) {
        r = cpuid(CPUID_HV_BASE, 0);
        reg_chars(hv, r.ebx);
        reg_chars(hv + 4, r.ecx);
        reg_chars(hv + 8, r.edx);
        /* Signatures shorter than 12 bytes are NUL-padded ("KVMKVMKVM"). */
        guest_log("hv_signature=%s hv_max_leaf=0x%x", hv, r.eax);
        if (!memcmp(hv, "KVMKVMKVM\0\0\0", 12) && r.eax >= CPUID_HV_BASE + 1) {
            guest_log("kvm_features=0x%08x", cpuid(CPUID_HV_BASE + 1, 0).eax);
        }
    }
    return 0;
}
