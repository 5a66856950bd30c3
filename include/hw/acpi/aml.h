/*
 * A small AML (ACPI Machine Language, ACPI 6.x chapter 20) writer that
 * appends straight to a GByteArray.
 *
 * Constructs whose encoding starts with a PkgLength (Scope, Device, Method,
 * Package, Buffer) are written in two steps: *_begin() writes the opcode and
 * returns a mark, the caller appends the body, and aml_end() (or
 * aml_buffer_end()) inserts the PkgLength once the body's size is known.
 * Marks nest like the constructs do.
 *
 *     gsize dev = aml_device_begin(b, "PWRB");
 *     aml_name_eisaid(b, "_HID", "PNP0C0C");
 *     aml_end(b, dev);
 *
 * Names are ASL-style paths: "\\_SB.PCI0", "^FOO", "ISA" (segments shorter
 * than four characters are padded with '_').
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define AML_PKGLENGTH_MAX 0x0fffffffu

/*
 * Encode the PkgLength of a body of @body_len bytes (the encoded value
 * counts its own bytes too) into @out; returns the number of bytes (1..4).
 */
unsigned aml_pkglength_encode(uint8_t out[4], gsize body_len);

/* Data objects. */
void aml_integer(GByteArray *b, uint64_t v); /* shortest encoding */
void aml_string(GByteArray *b, const char *s);
void aml_eisaid(GByteArray *b, const char *id); /* "PNP0A03" as a compressed DWord */
void aml_name_string(GByteArray *b, const char *path);

/* Name(@name, ...): the caller appends the object unless a helper below fits. */
void aml_name(GByteArray *b, const char *name);
void aml_name_int(GByteArray *b, const char *name, uint64_t v);
void aml_name_str(GByteArray *b, const char *name, const char *s);
void aml_name_eisaid(GByteArray *b, const char *name, const char *id);

/* PkgLength constructs; close each with aml_end(). */
gsize aml_scope_begin(GByteArray *b, const char *path);
gsize aml_device_begin(GByteArray *b, const char *path);
gsize aml_method_begin(GByteArray *b, const char *path, unsigned nargs, bool serialized);
gsize aml_package_begin(GByteArray *b, unsigned nelems);
gsize aml_if_begin(GByteArray *b); /* the caller appends the predicate first */
void aml_end(GByteArray *b, gsize mark);

/* Buffer(){...}: the size operand is derived from the body at the end. */
gsize aml_buffer_begin(GByteArray *b);
void aml_buffer_end(GByteArray *b, gsize mark);

/* Statements and expressions. */
void aml_notify(GByteArray *b, const char *path, uint64_t value);
void aml_return(GByteArray *b); /* the caller appends the operand */
void aml_lequal(GByteArray *b); /* the caller appends two operands */
void aml_and(GByteArray *b);    /* the caller appends two operands, then a target */
void aml_null_target(GByteArray *b);
void aml_arg(GByteArray *b, unsigned n);   /* Arg0..Arg6 */
void aml_local(GByteArray *b, unsigned n); /* Local0..Local7 */

/*
 * Resource templates (6.4): a Buffer holding descriptors and an end tag.
 * Address space descriptors are always producer, fixed min and max,
 * positive decode, no translation; the length is max - min + 1.
 */
typedef enum { AML_RES_MEMORY = 0, AML_RES_IO = 1, AML_RES_BUS = 2 } AmlResType;
/* Type-specific flags. */
enum {
    AML_RES_IO_ENTIRE_RANGE = 3,
    AML_RES_MEM_READ_WRITE = 1 << 0,
    AML_RES_MEM_CACHEABLE = 1 << 1,
};

gsize aml_resource_template_begin(GByteArray *b);
void aml_resource_template_end(GByteArray *b, gsize mark);
/* @width is 16, 32 or 64: Word, DWord or QWord address space descriptor. */
void aml_res_address(GByteArray *b, unsigned width, AmlResType type, uint8_t type_flags,
                     uint64_t min, uint64_t max);
/* IO(Decode16, @base, @base, 1, @len) */
void aml_res_io(GByteArray *b, uint16_t base, uint8_t len);
/* IRQNoFlags(){@irq}: ISA edge, active high. */
void aml_res_irq(GByteArray *b, unsigned irq);
/* Memory32Fixed(ReadWrite or ReadOnly, @base, @len) */
void aml_res_memory32_fixed(GByteArray *b, uint32_t base, uint32_t len, bool writable);
