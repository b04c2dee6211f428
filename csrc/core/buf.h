/* buf: a byte queue with a hard ceiling.
 *
 * Bytes are appended at the tail and consumed from the head; storage grows
 * on demand but never beyond `max`, so a peer that sends faster than we can
 * pass bytes on hits the ceiling instead of growing memory (callers stop
 * reading that peer: backpressure). Consumed space is reclaimed by moving
 * the live bytes to the front when the tail runs out of room.
 *
 * The buffer owns its storage; pointers from buf_data()/buf_reserve() are
 * valid until the next call that may grow or compact it. */
#ifndef CK_BUF_H
#define CK_BUF_H
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t off; /* first live byte */
    size_t len; /* live bytes */
    size_t cap; /* allocated */
    size_t max; /* ceiling for cap */
} buf_t;

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);

/* Appends n bytes. Returns 0, or -1 (nothing appended) when the result
 * would exceed the ceiling or memory is exhausted. */
int buf_append(buf_t *b, const void *p, size_t n);

/* Makes room for up to `want` bytes at the tail and returns a pointer to
 * it; *got receives how many bytes may be written (0 when the buffer is at
 * its ceiling). Follow with buf_commit(b, written). */
uint8_t *buf_reserve(buf_t *b, size_t want, size_t *got);
void buf_commit(buf_t *b, size_t n);

/* Hands the storage and its live bytes to the caller, leaving the buffer
 * empty (it allocates anew on the next append). Returns the block to
 * free(), or NULL when nothing is live; *bytes and *len receive the live
 * bytes inside it. Lets a queue's contents go to a socket write without a
 * copy into a separate block. */
void *buf_detach(buf_t *b, uint8_t **bytes, size_t *len);

/* Drops n bytes from the head (n <= buf_len). */
void buf_consume(buf_t *b, size_t n);
void buf_clear(buf_t *b);

/* NULL for a buffer that never held anything (NULL + 0 is undefined in C). */
static inline uint8_t *buf_data(const buf_t *b)
{
    return b->data ? b->data + b->off : NULL;
}
static inline size_t buf_len(const buf_t *b)
{
    return b->len;
}
static inline size_t buf_room(const buf_t *b)
{
    return b->max - b->len;
}

#endif
