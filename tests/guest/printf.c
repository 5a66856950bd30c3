/* A small printf onto the serial port. */
#include "libguest.h"

static int put(char c)
{
    if (c == '\n') {
        serial_putc('\r');
    }
    serial_putc(c);
    return 1;
}

static int put_num(uint32_t v, unsigned base, bool upper, bool neg, int width, char pad)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[12];
    int n = 0, out = 0;

    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg) {
        width--;
        if (pad == '0') {
            out += put('-');
        }
    }
    for (int i = n; i < width; i++) {
        out += put(pad);
    }
    if (neg && pad != '0') {
        out += put('-');
    }
    while (n) {
        out += put(buf[--n]);
    }
    return out;
}

int vprintf(const char *fmt, va_list ap)
{
    int out = 0;

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out += put(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            fmt++;          /* long and size_t are 32 bits here */
        }
        switch (*fmt) {
        case 'd': {
            int32_t v = va_arg(ap, int32_t);
            uint32_t mag = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
            out += put_num(mag, 10, false, v < 0, width, pad);
            break;
        }
        case 'u':
            out += put_num(va_arg(ap, uint32_t), 10, false, false, width, pad);
            break;
        case 'x':
        case 'X':
            out += put_num(va_arg(ap, uint32_t), 16, *fmt == 'X', false, width, pad);
            break;
        case 'p':
            out += put('0') + put('x');
            out += put_num((uint32_t)(uintptr_t)va_arg(ap, void *), 16, false, false, 8, '0');
            break;
        case 'c':
            out += put((char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = 0;
            if (!s) {
                s = "(null)";
            }
            while (s[len]) {
                len++;
            }
            for (int i = len; i < width; i++) {
                out += put(' ');
            }
            while (*s) {
                out += put(*s++);
            }
            break;
        }
        case '%':
            out += put('%');
            break;
        case '\0':
            return out;
        default:
            out += put('%') + put(*fmt);
            break;
        }
    }
    return out;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

void guest_log(const char *fmt, ...)
{
    va_list ap;
    printf("@guest: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    put('\n');
}
