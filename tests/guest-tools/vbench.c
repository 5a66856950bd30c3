/*
 * vbench: guest-side I/O measurements for bench/virtio. Each prints one line
 *   vbench NAME VALUE UNIT
 * and exits 0, or prints one error line naming the bad argument and exits 2.
 *
 *   vbench disk-seq-write DEV MiB       O_DIRECT 1 MiB writes from offset 0, then fdatasync
 *   vbench disk-seq-read DEV MiB        O_DIRECT 1 MiB reads from offset 0
 *   vbench disk-randread DEV SECONDS [QD]  4 KiB O_DIRECT reads at random offsets, QD threads (default 1)
 *   vbench tcp-send HOST PORT MiB       send MiB to HOST:PORT; done when the peer has closed
 *
 * MB/s is 10^6 bytes per second; the clock is CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define SMALL 4096u
#define QD_MAX 64

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long number(const char *what, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max)
        die("%s %s: expected a number from 1 to %lu", what, s, max);
    return v;
}

static void *aligned(size_t len)
{
    void *p;
    if (posix_memalign(&p, SMALL, len))
        die("out of memory");
    memset(p, 0x5a, len);
    return p;
}

static int open_dev(const char *dev, int flags, uint64_t *size)
{
    int fd = open(dev, flags | O_DIRECT);
    if (fd < 0)
        die("DEV %s: %s", dev, strerror(errno));
    if (ioctl(fd, BLKGETSIZE64, size) < 0) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            die("DEV %s: cannot tell its size", dev);
        *size = end;
    }
    return fd;
}

static void disk_seq(char **argv, int argc, int write_it)
{
    if (argc != 2)
        die("usage: vbench %s DEV MiB", write_it ? "disk-seq-write" : "disk-seq-read");
    uint64_t size;
    unsigned long mib = number("MiB", argv[1], 1ul << 20);
    int fd = open_dev(argv[0], write_it ? O_WRONLY : O_RDONLY, &size);
    if ((uint64_t)mib * BLOCK > size)
        die("MiB %lu: larger than DEV %s (%llu MiB)", mib, argv[0], (unsigned long long)(size >> 20));
    char *buf = aligned(BLOCK);
    double t0 = now();
    for (unsigned long i = 0; i < mib; i++) {
        ssize_t n = write_it ? pwrite(fd, buf, BLOCK, (off_t)i * BLOCK) : pread(fd, buf, BLOCK, (off_t)i * BLOCK);
        if (n != BLOCK)
            die("DEV %s: %s at %lu MiB: %s", argv[0], write_it ? "write" : "read", i,
                n < 0 ? strerror(errno) : "short transfer");
    }
    if (write_it && fdatasync(fd) < 0)
        die("DEV %s: fdatasync: %s", argv[0], strerror(errno));
    double secs = now() - t0;
    printf("vbench %s %.1f MB/s\n", write_it ? "disk-seq-write" : "disk-seq-read", mib * (double)BLOCK / secs / 1e6);
    close(fd);
    free(buf);
}

typedef struct RandReader {
    pthread_t thread;
    int fd;
    uint64_t blocks;
    double end;
    unsigned seed;
    unsigned long done;
    int err;
} RandReader;

static void *rand_reader(void *opaque)
{
    RandReader *r = opaque;
    char *buf = aligned(SMALL);
    uint64_t x = 0x9e3779b97f4a7c15ull * (r->seed + 1);
    while (now() < r->end) {
        for (int i = 0; i < 64; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            if (pread(r->fd, buf, SMALL, (off_t)(x % r->blocks) * SMALL) != SMALL) {
                r->err = errno ? errno : EIO;
                goto out;
            }
            r->done++;
        }
    }
out:
    free(buf);
    return NULL;
}

static void disk_randread(char **argv, int argc)
{
    if (argc != 2 && argc != 3)
        die("usage: vbench disk-randread DEV SECONDS [QD]");
    uint64_t size;
    unsigned long secs = number("SECONDS", argv[1], 3600);
    unsigned long qd = argc == 3 ? number("QD", argv[2], QD_MAX) : 1;
    int fd = open_dev(argv[0], O_RDONLY, &size);
    if (size < SMALL)
        die("DEV %s: smaller than 4 KiB", argv[0]);
    RandReader r[QD_MAX] = {{0}};
    double t0 = now();
    for (unsigned long i = 0; i < qd; i++) {
        r[i] = (RandReader){.fd = fd, .blocks = size / SMALL, .end = t0 + secs, .seed = i};
        if (pthread_create(&r[i].thread, NULL, rand_reader, &r[i]))
            die("cannot start reader thread %lu", i);
    }
    unsigned long total = 0;
    for (unsigned long i = 0; i < qd; i++) {
        pthread_join(r[i].thread, NULL);
        if (r[i].err)
            die("DEV %s: read: %s", argv[0], strerror(r[i].err));
        total += r[i].done;
    }
    printf("vbench disk-randread %.0f IOPS\n", total / (now() - t0));
    close(fd);
}

static void tcp_send(char **argv, int argc)
{
    if (argc != 3)
        die("usage: vbench tcp-send HOST PORT MiB");
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1)
        die("HOST %s: not an IPv4 address", argv[0]);
    sa.sin_port = htons(number("PORT", argv[1], 65535));
    unsigned long mib = number("MiB", argv[2], 1ul << 20);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("HOST %s PORT %s: connect: %s", argv[0], argv[1], strerror(errno));
    char *buf = aligned(BLOCK);
    double t0 = now();
    for (unsigned long i = 0; i < mib; i++) {
        for (size_t off = 0; off < BLOCK;) {
            ssize_t n = send(s, buf + off, BLOCK - off, 0);
            if (n <= 0)
                die("HOST %s PORT %s: send: %s", argv[0], argv[1], n < 0 ? strerror(errno) : "closed");
            off += n;
        }
    }
    /* Count only what the peer took: wait for its close after our FIN. */
    shutdown(s, SHUT_WR);
    while (recv(s, buf, BLOCK, 0) > 0)
        ;
    double secs = now() - t0;
    printf("vbench tcp-send %.1f MB/s\n", mib * (double)BLOCK / secs / 1e6);
    close(s);
    free(buf);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        die("usage: vbench disk-seq-write|disk-seq-read|disk-randread|tcp-send ARGS...");
    const char *name = argv[1];
    if (!strcmp(name, "disk-seq-write"))
        disk_seq(argv + 2, argc - 2, 1);
    else if (!strcmp(name, "disk-seq-read"))
        disk_seq(argv + 2, argc - 2, 0);
    else if (!strcmp(name, "disk-randread"))
        disk_randread(argv + 2, argc - 2);
    else if (!strcmp(name, "tcp-send"))
        tcp_send(argv + 2, argc - 2);
    else
        die("%s: unknown measurement (disk-seq-write, disk-seq-read, disk-randread, tcp-send)", name);
    return 0;
}
