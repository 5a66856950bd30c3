/*
 * PVH entry of the test guests.
 *
 * The loader enters _start in 32-bit protected mode with paging off, flat
 * 4 GiB segments, interrupts off and %ebx holding the physical address of
 * struct hvm_start_info.  The ELF note below (owner "Xen", type 18,
 * XEN_ELFNOTE_PHYS32_ENTRY) tells the loader where _start is.
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define STACK_SIZE 8192

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* name size: "Xen" and its NUL */
    .long 4                         /* descriptor size */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long _start
    .balign 4

    .section .text.entry, "ax", @progbits
    .code32
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    movl $stack_top, %esp
    xorl %ebp, %ebp

    /* Clear .bss ourselves rather than trust the loader to. */
    movl %ebx, %edx
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    pushl %edx                      /* struct hvm_start_info * */
    call guest_entry                /* does not return */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

    .section .stack, "aw", @nobits
    .balign 16
    .space STACK_SIZE
stack_top:

    .section .note.GNU-stack, "", @progbits
