/*
 * vCPU state as text: the register dump a user sees when the guest cannot
 * continue, and the same text (plus disassembly) for HMP's "info registers"
 * and "x/Ni". The caller makes sure the vCPU is outside KVM_RUN.
 */
#define G_LOG_DOMAIN "cpu"
#include "accel/kvm-internal.h"
#include "target/i386/page-walk.h"
#include "util/error.h"
#include <capstone/capstone.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#define CODE_BYTES 32
#define MAX_INSNS 6
#define X86_MAX_INSN 15
#define PAGE_SIZE_4K 4096u

/* QEMU's layout: selector, base, limit, then the descriptor's attribute bits where the CPU keeps them. */
static void format_segment(GString *out, const char *name, const struct kvm_segment *s)
{
    unsigned flags = (unsigned)s->type << 8 | (unsigned)s->s << 12 | (unsigned)s->dpl << 13 |
                     (unsigned)s->present << 15 | (unsigned)s->avl << 20 | (unsigned)s->l << 21 |
                     (unsigned)s->db << 22 | (unsigned)s->g << 23;
    g_string_append_printf(out, "%-3s=%04x %016llx %08x %08x\n", name, s->selector, (unsigned long long)s->base,
                           s->limit, flags);
}

static bool get_state(KvmVcpu *vcpu, struct kvm_regs *r, struct kvm_sregs *s, GError **err)
{
    if (ioctl(vcpu->fd, KVM_GET_REGS, r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, s) < 0) {
        int e = errno;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "vCPU %u: registers unavailable: %s", vcpu->index,
                    g_strerror(e));
        return false;
    }
    return true;
}

static void format_registers(GString *out, const struct kvm_regs *r, const struct kvm_sregs *s)
{
    g_string_append_printf(out,
                           "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                           "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
                           "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
                           "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
                           "RIP=%016llx RFL=%08llx CPL=%u\n",
                           r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8, r->r9, r->r10,
                           r->r11, r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags, s->cs.dpl);
    static const struct {
        const char *name;
        size_t offset;
    } segs[] = {
        { "ES", offsetof(struct kvm_sregs, es) }, { "CS", offsetof(struct kvm_sregs, cs) },
        { "SS", offsetof(struct kvm_sregs, ss) }, { "DS", offsetof(struct kvm_sregs, ds) },
        { "FS", offsetof(struct kvm_sregs, fs) }, { "GS", offsetof(struct kvm_sregs, gs) },
        { "LDT", offsetof(struct kvm_sregs, ldt) }, { "TR", offsetof(struct kvm_sregs, tr) },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(segs); i++) {
        format_segment(out, segs[i].name, (const void *)((const char *)s + segs[i].offset));
    }
    g_string_append_printf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n", s->gdt.base, s->gdt.limit,
                           s->idt.base, s->idt.limit);
    g_string_append_printf(out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\nEFER=%016llx\n", s->cr0, s->cr2,
                           s->cr3, s->cr4, s->efer);
}

bool kvm_vcpu_format_registers(KvmVcpu *vcpu, GString *out, GError **err)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (!get_state(vcpu, &r, &s, err)) {
        return false;
    }
    format_registers(out, &r, &s);
    return true;
}

/*
 * Copy up to @len bytes at guest-linear @linear, page by page through the
 * page tables of the vCPU with control registers @s (a program's pages
 * too, SMAP or not); returns how many were readable before the first
 * unmapped page or non-RAM address.
 */
static size_t read_linear(KvmVcpu *vcpu, const struct kvm_sregs *s, uint64_t linear, uint8_t *buf, size_t len)
{
    Machine *m = vcpu->vm->machine;
    size_t done = 0;
    while (done < len && m->gpa_to_hva) {
        uint64_t addr = linear + done, gpa;
        size_t chunk = MIN(len - done, PAGE_SIZE_4K - (addr & (PAGE_SIZE_4K - 1)));
        if (!x86_translate(m, vcpu->fd, s, addr, &gpa)) {
            break;
        }
        const uint8_t *p = m->gpa_to_hva(m, gpa, chunk);
        if (!p) {
            break;
        }
        memcpy(buf + done, p, chunk);
        done += chunk;
    }
    return done;
}

static cs_mode code_mode(const struct kvm_sregs *s)
{
    return (s->efer & X86_EFER_LMA) && s->cs.l ? CS_MODE_64 : s->cs.db ? CS_MODE_32 : CS_MODE_16;
}

/* "0xADDR:  bytes  mnemonic operands" lines; @marker marks the first. */
static size_t disassemble(const struct kvm_sregs *s, const uint8_t *code, size_t len, uint64_t addr,
                          unsigned count, GString *out, bool marker)
{
    csh handle;
    if (cs_open(CS_ARCH_X86, code_mode(s), &handle) != CS_ERR_OK) {
        g_string_append(out, "capstone is not usable\n");
        return 0;
    }
    cs_insn *insn;
    size_t n = cs_disasm(handle, code, len, addr, count, &insn);
    for (size_t i = 0; i < n; i++) {
        g_autoptr(GString) hex = g_string_new(NULL);
        for (unsigned b = 0; b < insn[i].size; b++) {
            g_string_append_printf(hex, "%02x", insn[i].bytes[b]);
        }
        g_string_append_printf(out, "%s0x%016llx:  %-20s %s%s%s\n", marker ? (i == 0 ? "=> " : "   ") : "",
                               (unsigned long long)insn[i].address, hex->str, insn[i].mnemonic,
                               insn[i].op_str[0] ? " " : "", insn[i].op_str);
    }
    cs_free(insn, n);
    cs_close(&handle);
    return n;
}

bool kvm_vcpu_disassemble(KvmVcpu *vcpu, bool at_pc, uint64_t addr, unsigned count, GString *out, GError **err)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (!get_state(vcpu, &r, &s, err)) {
        return false;
    }
    uint64_t linear = at_pc ? s.cs.base + r.rip : addr;
    size_t want = (size_t)count * X86_MAX_INSN;
    g_autofree uint8_t *code = g_malloc(want);
    size_t got = read_linear(vcpu, &s, linear, code, want);
    if (got == 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Cannot access memory at 0x%llx",
                    (unsigned long long)linear);
        return false;
    }
    if (disassemble(&s, code, got, linear, count, out, false) == 0) {
        g_string_append_printf(out, "0x%016llx:  (bad)\n", (unsigned long long)linear);
    }
    return true;
}

void kvm_vcpu_dump_state(KvmVcpu *vcpu, const char *why)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    g_autoptr(GString) out = g_string_new(NULL);

    g_string_append_printf(out, "vCPU %u: %s\n", vcpu->index, why);
    if (!get_state(vcpu, &r, &s, NULL)) {
        g_string_append(out, "(registers unavailable)\n");
        fputs(out->str, stderr);
        return;
    }
    format_registers(out, &r, &s);
    uint64_t linear = s.cs.base + r.rip;
    uint8_t code[CODE_BYTES];
    size_t got = read_linear(vcpu, &s, linear, code, sizeof(code));
    if (got == 0) {
        g_string_append_printf(out, "code: RIP's linear address 0x%llx is not mapped RAM\n",
                               (unsigned long long)linear);
    } else {
        g_string_append(out, "code at RIP:\n");
        if (disassemble(&s, code, got, r.rip, MAX_INSNS, out, true) == 0) {
            g_string_append(out, "  (bytes do not disassemble:");
            for (size_t i = 0; i < MIN(got, 16u); i++) {
                g_string_append_printf(out, " %02x", code[i]);
            }
            g_string_append(out, ")\n");
        }
    }
    fputs(out->str, stderr);
}
