/* buf: bounded byte queue. See buf.h for the contract. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

/* Ensures `n` bytes can be written at the tail, compacting before growing
 * so that a steady stream reuses the same allocation. */
static int ensure_tail(buf_t *b, size_t n)
{
    if (n > b->max - b->len)
        return -1;
    if (b->off + b->len + n <= b->cap)
        return 0;
    if (b->off) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->len + n <= b->cap)
            return 0;
    }
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n)
        ncap *= 2;
    if (ncap > b->max)
        ncap = b->max;
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (ensure_tail(b, n) < 0)
        return -1;
    memcpy(b->data + b->off + b->len, p, n);
    b->len += n;
    return 0;
}

uint8_t *buf_reserve(buf_t *b, size_t want, size_t *got)
{
    size_t room = b->max - b->len;
    if (want > room)
        want = room;
    *got = 0;
    if (want == 0 || ensure_tail(b, want) < 0)
        return NULL;
    *got = want;
    return b->data + b->off + b->len;
}

void buf_commit(buf_t *b, size_t n)
{
    b->len += n;
}

void *buf_detach(buf_t *b, uint8_t **bytes, size_t *len)
{
    *bytes = NULL;
    *len = 0;
    if (b->len == 0)
        return NULL;
    void *block = b->data;
    *bytes = b->data + b->off;
    *len = b->len;
    b->data = NULL;
    b->off = b->len = b->cap = 0;
    return block;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void buf_clear(buf_t *b)
{
    b->off = b->len = 0;
}
