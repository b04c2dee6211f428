/* libFuzzer target: the WebSocket frame decoder in both roles and the
 * whole-message reader, over arbitrary bytes split at a fuzzed point; the
 * word-wise ws_mask against the byte-wise definition at a fuzzed
 * alignment, length, mask and payload offset; and the UTF-8 check (with
 * its word-wise ASCII skip) against RFC 3629 decoded sequence by
 * sequence, fed whole and split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

static int on_msg(void *ud, int op, const uint8_t *d, size_t n)
{
    (void)ud;
    if (op == WS_OP_TEXT) {
        ws_utf8 u = {0};
        if (ws_utf8_feed(&u, d, n) != 0 || ws_utf8_done(&u) != 0)
            abort(); /* text messages handed out must be valid UTF-8 */
    }
    return 0;
}

static void run_dec(int role, uint8_t *buf, size_t size, size_t split)
{
    ws_dec d;
    ws_dec_init(&d, role, 1 << 20);
    size_t off = 0;
    uint64_t payload = 0;
    while (off < size) {
        size_t lim = off < split ? split : size;
        ws_ev ev;
        long n = ws_dec_step(&d, buf + off, lim - off, &ev);
        if (n < 0)
            return;
        off += (size_t)n;
        if (ev.type == WS_EV_DATA)
            payload += ev.len;
        if (ev.type == WS_EV_NONE && off < size && lim == size)
            abort(); /* no progress although bytes remain */
        if (payload > size)
            abort();
    }
}

/* Bytes 1..4 are the mask, 5 the start alignment and payload offset;
 * the rest is the payload, masked at that alignment in a fresh copy. */
static void check_mask(const uint8_t *data, size_t size)
{
    if (size < 6)
        return;
    const uint8_t *mask = data + 1;
    size_t align = data[5] & 15;
    uint64_t offset = (uint64_t)(data[5] >> 4) * 0x9E3779B1u;
    const uint8_t *p = data + 6;
    size_t n = size - 6;
    uint8_t *a = malloc(n + 16), *want = malloc(n + 1);
    if (!a || !want)
        abort();
    memcpy(a + align, p, n);
    for (size_t i = 0; i < n; i++)
        want[i] = p[i] ^ mask[(offset + i) & 3];
    ws_mask(a + align, n, mask, offset);
    if (n && memcmp(a + align, want, n) != 0)
        abort();
    free(a);
    free(want);
}

static int utf8_reference(const uint8_t *p, size_t n)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t len = b < 0x80             ? 1
                     : (b & 0xE0) == 0xC0 ? 2
                     : (b & 0xF0) == 0xE0 ? 3
                     : (b & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (len == 0 || i + len > n)
            return 0;
        uint32_t cp = len == 1 ? b : len == 2 ? b & 0x1Fu : len == 3 ? b & 0x0Fu : b & 0x07u;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3Fu);
        }
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void check_utf8(const uint8_t *data, size_t size, size_t split)
{
    ws_utf8 u = {0}, v = {0};
    int whole = ws_utf8_feed(&u, data, size) == 0 && ws_utf8_done(&u) == 0;
    int parts = ws_utf8_feed(&v, data, split) == 0 && ws_utf8_feed(&v, data + split, size - split) == 0 &&
                ws_utf8_done(&v) == 0;
    if (whole != utf8_reference(data, size) || parts != whole)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    check_mask(data, size);
    size_t split = data[0] % (size);
    check_utf8(data, size, split);
    uint8_t *buf = malloc(size);
    memcpy(buf, data, size);
    run_dec(WS_ROLE_SERVER, buf, size, split);
    memcpy(buf, data, size);
    run_dec(WS_ROLE_CLIENT, buf, size, split);
    memcpy(buf, data, size);
    ws_msg m;
    ws_msg_init(&m, WS_ROLE_SERVER, 4096);
    ws_msg_feed(&m, buf, size, on_msg, NULL);
    ws_msg_free(&m);
    free(buf);
    return 0;
}
