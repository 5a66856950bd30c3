/* Scatter-gather helpers: see include/util/iov.h. */
#include "util/iov.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

size_t iov_size(const struct iovec *iov, unsigned cnt)
{
    size_t n = 0;
    for (unsigned i = 0; i < cnt; i++) {
        n += iov[i].iov_len;
    }
    return n;
}

static size_t iov_copy(const struct iovec *iov, unsigned cnt, size_t offset, void *buf, size_t len, bool to_iov)
{
    size_t done = 0;
    for (unsigned i = 0; i < cnt && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, len - done);
        uint8_t *p = (uint8_t *)iov[i].iov_base + offset;
        if (to_iov) {
            memcpy(p, (uint8_t *)buf + done, n);
        } else {
            memcpy((uint8_t *)buf + done, p, n);
        }
        done += n;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t offset, const void *buf, size_t len)
{
    return iov_copy(iov, cnt, offset, (void *)buf, len, true);
}

size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t offset, void *buf, size_t len)
{
    return iov_copy(iov, cnt, offset, buf, len, false);
}
