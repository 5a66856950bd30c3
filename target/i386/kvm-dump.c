/* What a user sees when the guest cannot continue: registers and code. */
#define G_LOG_DOMAIN "cpu"
#include "accel/kvm-internal.h"
#include <capstone/capstone.h>
#include <stdio.h>
#include <sys/ioctl.h>

#define CODE_BYTES 32
#define MAX_INSNS 6

static void print_segment(const char *name, const struct kvm_segment *s)
{
    fprintf(stderr, "%-3s=%04x %016llx %08x type=%x dpl=%u db=%u l=%u g=%u p=%u\n", name, s->selector,
            (unsigned long long)s->base, s->limit, s->type, s->dpl, s->db, s->l, s->g, s->present);
}

static void disassemble(KvmVcpu *vcpu, const struct kvm_regs *r, const struct kvm_sregs *s)
{
    uint64_t linear = s->cs.base + r->rip;
    struct kvm_translation tr = { .linear_address = linear };
    if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid) {
        fprintf(stderr, "code: RIP's linear address 0x%llx is not mapped\n", (unsigned long long)linear);
        return;
    }
    Machine *m = vcpu->vm->machine;
    const uint8_t *code = m->gpa_to_hva ? m->gpa_to_hva(m, tr.physical_address, CODE_BYTES) : NULL;
    if (!code) {
        fprintf(stderr, "code: guest-physical 0x%llx is not RAM\n", (unsigned long long)tr.physical_address);
        return;
    }
    cs_mode mode = (s->efer & 0x400) && s->cs.l ? CS_MODE_64 : s->cs.db ? CS_MODE_32 : CS_MODE_16;
    csh handle;
    if (cs_open(CS_ARCH_X86, mode, &handle) != CS_ERR_OK) {
        fprintf(stderr, "code: capstone is not usable\n");
        return;
    }
    cs_insn *insn;
    size_t n = cs_disasm(handle, code, CODE_BYTES, r->rip, MAX_INSNS, &insn);
    fprintf(stderr, "code at RIP (guest-physical 0x%llx):\n", (unsigned long long)tr.physical_address);
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "  %s0x%llx: %-8s %s\n", i == 0 ? "=> " : "   ", (unsigned long long)insn[i].address,
                insn[i].mnemonic, insn[i].op_str);
    }
    if (n == 0) {
        fprintf(stderr, "  (bytes do not disassemble:");
        for (int i = 0; i < 16; i++) {
            fprintf(stderr, " %02x", code[i]);
        }
        fprintf(stderr, ")\n");
    }
    cs_free(insn, n);
    cs_close(&handle);
}

void kvm_vcpu_dump_state(KvmVcpu *vcpu, const char *why)
{
    struct kvm_regs r;
    struct kvm_sregs s;

    fprintf(stderr, "vCPU %u: %s\n", vcpu->index, why);
    if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(stderr, "(registers unavailable)\n");
        return;
    }
    fprintf(stderr, "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                    "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
                    "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
                    "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
                    "RIP=%016llx RFL=%08llx\n",
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
            r.r13, r.r14, r.r15, r.rip, r.rflags);
    print_segment("CS", &s.cs);
    print_segment("SS", &s.ss);
    print_segment("DS", &s.ds);
    print_segment("ES", &s.es);
    print_segment("FS", &s.fs);
    print_segment("GS", &s.gs);
    print_segment("TR", &s.tr);
    fprintf(stderr, "GDT=%016llx/%04x IDT=%016llx/%04x\n", s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
    fprintf(stderr, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%08llx\n", s.cr0, s.cr2, s.cr3,
            s.cr4, s.efer);
    disassemble(vcpu, &r, &s);
}
