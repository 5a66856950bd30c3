/* x86 page-table walks over guest RAM: see include/target/i386/page-walk.h. */
#include "target/i386/page-walk.h"
#include <string.h>
#include <sys/ioctl.h>

#define CR4_LA57 (1u << 12)
#define PTE_PRESENT 1ull
#define PTE_LARGE 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

uint64_t x86_guest_u64(Machine *m, uint64_t gpa)
{
    uint64_t v = 0;
    const void *p = m->gpa_to_hva(m, gpa, 8);
    if (p) {
        memcpy(&v, p, 8);
    }
    return v;
}

bool x86_translate(Machine *m, int vcpu_fd, const struct kvm_sregs *s, uint64_t linear, uint64_t *gpa)
{
    if (!(s->efer & X86_EFER_LMA)) {
        struct kvm_translation tr = { .linear_address = linear };
        if (ioctl(vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid) {
            return false;
        }
        *gpa = tr.physical_address;
        return true;
    }
    uint64_t table = s->cr3 & PTE_ADDR;
    for (unsigned level = s->cr4 & CR4_LA57 ? 5 : 4; level >= 1; level--) {
        unsigned shift = 12 + 9 * (level - 1);
        uint64_t entry = x86_guest_u64(m, table + ((linear >> shift) & 511) * 8);
        if (!(entry & PTE_PRESENT)) {
            return false;
        }
        if (level == 1 || ((level == 2 || level == 3) && (entry & PTE_LARGE))) {
            uint64_t offset = linear & ((1ull << shift) - 1);
            *gpa = (entry & PTE_ADDR & ~((1ull << shift) - 1)) | offset;
            return true;
        }
        table = entry & PTE_ADDR;
    }
    return false;
}
