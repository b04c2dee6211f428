/* Unit tests for ws (frame decoder, encoder, handshake key, UTF-8, messages). */
#include "check.h"
#include "ws.h"

static int tests_run;

/* Builds a masked client frame into out; returns its length. */
static size_t client_frame(uint8_t *out, int fin, int op, const char *payload, size_t n)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = ws_header(out, fin, op, n, mask);
    memcpy(out + h, payload, n);
    ws_mask(out + h, n, mask, 0);
    return h + n;
}

/* Runs the decoder over `in` (in pieces of `step`), collecting payload. */
static long decode_all(ws_dec *d, uint8_t *in, size_t n, size_t step, char *out, int *frames)
{
    size_t off = 0, o = 0;
    *frames = 0;
    while (off < n) {
        size_t lim = n - off < step ? n - off : step, used = 0;
        for (;;) {
            ws_ev ev;
            long r = ws_dec_step(d, in + off + used, lim - used, &ev);
            if (r < 0)
                return r;
            used += (size_t)r;
            if (ev.type == WS_EV_NONE)
                break;
            if (ev.type == WS_EV_DATA) {
                memcpy(out + o, ev.data, ev.len);
                o += ev.len;
            }
            if (ev.type == WS_EV_END)
                (*frames)++;
        }
        off += used;
    }
    out[o] = '\0';
    return (long)o;
}

static void decode_masked(void)
{
    uint8_t buf[512];
    size_t n = client_frame(buf, 0, WS_OP_TEXT, "Hel", 3);
    n += client_frame(buf + n, 1, WS_OP_PING, "p", 1); /* control frame inside a fragmented message */
    n += client_frame(buf + n, 1, WS_OP_CONT, "lo", 2);
    n += client_frame(buf + n, 1, WS_OP_BINARY, "", 0);
    for (size_t step = 1; step <= n; step++) {
        uint8_t copy[512];
        memcpy(copy, buf, n);
        ws_dec d;
        ws_dec_init(&d, WS_ROLE_SERVER, 1 << 20);
        char out[64];
        int frames;
        CHECK_EQ(decode_all(&d, copy, n, step, out, &frames), 6);
        CHECK_STR(out, "Helplo");
        CHECK_EQ(frames, 4);
    }
}

static long decode_one(int role, const uint8_t *bytes, size_t n)
{
    size_t ml;
    uint8_t *g = guarded(bytes, n, &ml);
    ws_dec d;
    ws_dec_init(&d, role, 1000);
    char out[2048];
    int frames;
    long r = decode_all(&d, g, n, n, out, &frames);
    guarded_free(g, n, ml);
    return r;
}

static void decode_errors(void)
{
    uint8_t b[64];
    /* Unmasked frame to a server. */
    size_t n = ws_header(b, 1, WS_OP_TEXT, 1, NULL);
    b[n++] = 'x';
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    /* The same frame is fine for a client. */
    CHECK_EQ(decode_one(WS_ROLE_CLIENT, b, n), 1);
    /* Masked frame to a client. */
    n = client_frame(b, 1, WS_OP_TEXT, "x", 1);
    CHECK_EQ(decode_one(WS_ROLE_CLIENT, b, n), -WS_CLOSE_PROTOCOL);
    /* Reserved bits. */
    n = client_frame(b, 1, WS_OP_TEXT, "x", 1);
    b[0] |= 0x40;
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    /* Unknown opcode. */
    n = client_frame(b, 1, 3, "x", 1);
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    /* Fragmented control frame, and one longer than 125. */
    n = client_frame(b, 0, WS_OP_PING, "x", 1);
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    uint8_t big[200];
    memset(big, 'a', sizeof big);
    uint8_t frame[300];
    n = client_frame(frame, 1, WS_OP_PING, (const char *)big, 126);
    CHECK_EQ(decode_one(WS_ROLE_SERVER, frame, n), -WS_CLOSE_PROTOCOL);
    /* Continuation without a start; a new message inside a fragmented one. */
    n = client_frame(b, 1, WS_OP_CONT, "x", 1);
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    n = client_frame(b, 0, WS_OP_TEXT, "x", 1);
    n += client_frame(b + n, 1, WS_OP_TEXT, "y", 1);
    CHECK_EQ(decode_one(WS_ROLE_SERVER, b, n), -WS_CLOSE_PROTOCOL);
    /* Non-minimal 16-bit length, 64-bit length with the top bit set. */
    uint8_t nm[] = {0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4};
    CHECK_EQ(decode_one(WS_ROLE_SERVER, nm, sizeof nm), -WS_CLOSE_PROTOCOL);
    uint8_t top[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    CHECK_EQ(decode_one(WS_ROLE_SERVER, top, sizeof top), -WS_CLOSE_PROTOCOL);
    /* Over the frame ceiling (1000 in decode_one). */
    uint8_t huge[] = {0x82, 0xFE, 0x10, 0x00, 1, 2, 3, 4};
    CHECK_EQ(decode_one(WS_ROLE_SERVER, huge, sizeof huge), -WS_CLOSE_TOO_BIG);
    /* Truncated header and truncated payload just need more bytes. */
    uint8_t trunc[] = {0x82, 0xFE, 0x01};
    CHECK_EQ(decode_one(WS_ROLE_SERVER, trunc, sizeof trunc), 0);
}

static void encode(void)
{
    uint8_t h[14];
    CHECK_EQ(ws_header(h, 1, WS_OP_TEXT, 125, NULL), 2);
    CHECK_EQ(ws_header(h, 1, WS_OP_TEXT, 126, NULL), 4);
    CHECK_EQ(h[1], 126);
    CHECK_EQ(ws_header(h, 1, WS_OP_BINARY, 65536, NULL), 10);
    CHECK_EQ(h[1], 127);
    CHECK_EQ(h[7], 1);
    uint8_t m[4] = {1, 2, 3, 4};
    CHECK_EQ(ws_header(h, 0, WS_OP_BINARY, 70000, m), 14);
    CHECK_EQ(h[0], 0x02);
    CHECK_EQ(h[1] & 0x80, 0x80);
}

static void accept_key(void)
{
    char out[29];
    /* RFC 6455 section 1.3. */
    CHECK_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_EQ(ws_accept_key("short", 5, out), -1);
    CHECK_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!!", 24, out), -1);
    char k1[25], k2[25];
    CHECK_EQ(ws_client_key(k1), 0);
    CHECK_EQ(ws_client_key(k2), 0);
    CHECK(strcmp(k1, k2) != 0);
    CHECK_EQ(ws_accept_key(k1, 24, out), 0);
}

static int utf8(const char *s, size_t n)
{
    ws_utf8 u = {0};
    return ws_utf8_feed(&u, (const uint8_t *)s, n) == 0 && ws_utf8_done(&u) == 0;
}

static void utf8_rules(void)
{
    CHECK(utf8("plain", 5));
    CHECK(utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
    CHECK(!utf8("\xc0\xaf", 2));                            /* overlong */
    CHECK(!utf8("\xe0\x80\xaf", 3));                        /* overlong */
    CHECK(!utf8("\xed\xa0\x80", 3));                        /* surrogate */
    CHECK(!utf8("\xf4\x90\x80\x80", 4));                    /* > U+10FFFF */
    CHECK(!utf8("\xe2\x82", 2));                            /* truncated */
    CHECK(!utf8("\xff", 1));
    /* Split across feeds. */
    ws_utf8 u = {0};
    CHECK_EQ(ws_utf8_feed(&u, (const uint8_t *)"\xe2", 1), 0);
    CHECK_EQ(ws_utf8_feed(&u, (const uint8_t *)"\x82", 1), 0);
    CHECK(ws_utf8_done(&u) != 0);
    CHECK_EQ(ws_utf8_feed(&u, (const uint8_t *)"\xac", 1), 0);
    CHECK_EQ(ws_utf8_done(&u), 0);
}

static int got_op, got_n;
static char got[256];
static int collect(void *ud, int op, const uint8_t *d, size_t n)
{
    (void)ud;
    got_op = op;
    got_n = (int)n;
    memcpy(got, d, n);
    got[n] = '\0';
    return 0;
}

/* An independent statement of RFC 3629 for whole inputs: decode each
 * sequence and check its length, range and the surrogate gap. */
static int utf8_reference(const uint8_t *p, size_t n)
{
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
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* ws_utf8_feed skips ASCII a word at a time: it must agree with the
 * reference on mostly-ASCII text with sequences (valid and broken) at
 * every position, fed whole and in pieces. */
static void utf8_matches_reference(void)
{
    static const char *inserts[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                    "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\xe2\x82", "\xff",         "\x80",
                                    "\xc3"};
    uint8_t text[64];
    for (size_t ins = 0; ins < sizeof inserts / sizeof inserts[0]; ins++) {
        size_t il = strlen(inserts[ins]);
        for (size_t total = il; total <= 40; total++) {
            for (size_t at = 0; at + il <= total; at++) {
                for (size_t i = 0; i < total; i++)
                    text[i] = (uint8_t)('a' + i % 26);
                memcpy(text + at, inserts[ins], il);
                int want = utf8_reference(text, total);
                ws_utf8 u = {0};
                int whole = ws_utf8_feed(&u, text, total) == 0 && ws_utf8_done(&u) == 0;
                CHECK_EQ(whole, want);
                for (size_t split = 0; split <= total; split += 3) {
                    ws_utf8 v = {0};
                    int ok = ws_utf8_feed(&v, text, split) == 0 &&
                             ws_utf8_feed(&v, text + split, total - split) == 0 && ws_utf8_done(&v) == 0;
                    CHECK_EQ(ok, want);
                }
            }
        }
    }
    /* Right before an unreadable page: the word-wise skip never reads
     * past the slice. */
    for (size_t n = 0; n <= 40; n++) {
        uint8_t src[40];
        memset(src, 'x', sizeof src);
        size_t ml;
        uint8_t *g = guarded(src, n, &ml);
        ws_utf8 u = {0};
        CHECK_EQ(ws_utf8_feed(&u, g, n), 0);
        guarded_free(g, n, ml);
    }
}

static void messages(void)
{
    uint8_t b[512];
    size_t n = client_frame(b, 0, WS_OP_TEXT, "{\"a\":", 5);
    n += client_frame(b + n, 1, WS_OP_CONT, "1}", 2);
    ws_msg m;
    ws_msg_init(&m, WS_ROLE_SERVER, 64);
    CHECK_EQ(ws_msg_feed(&m, b, n, collect, NULL), (long)n);
    CHECK_EQ(got_op, WS_OP_TEXT);
    CHECK_STR(got, "{\"a\":1}");
    /* Invalid UTF-8 split across fragments is caught. */
    n = client_frame(b, 0, WS_OP_TEXT, "\xe2", 1);
    n += client_frame(b + n, 1, WS_OP_CONT, "\x28\xa1", 2);
    CHECK_EQ(ws_msg_feed(&m, b, n, collect, NULL), -WS_CLOSE_BAD_DATA);
    ws_msg_free(&m);
    /* A message over the ceiling. */
    ws_msg_init(&m, WS_ROLE_SERVER, 8);
    n = client_frame(b, 0, WS_OP_BINARY, "12345", 5);
    n += client_frame(b + n, 1, WS_OP_CONT, "67890", 5);
    CHECK_EQ(ws_msg_feed(&m, b, n, collect, NULL), -WS_CLOSE_TOO_BIG);
    ws_msg_free(&m);
    /* Close frames: a valid one, and one with a bad code. */
    ws_msg_init(&m, WS_ROLE_SERVER, 64);
    uint8_t cp[125];
    size_t cl = ws_close_payload(cp, 1000, "bye");
    n = client_frame(b, 1, WS_OP_CLOSE, (const char *)cp, cl);
    CHECK_EQ(ws_msg_feed(&m, b, n, collect, NULL), (long)n);
    CHECK_EQ(got_op, WS_OP_CLOSE);
    CHECK_EQ(got_n, 5);
    cl = ws_close_payload(cp, 1005, "");
    n = client_frame(b, 1, WS_OP_CLOSE, (const char *)cp, cl);
    CHECK_EQ(ws_msg_feed(&m, b, n, collect, NULL), -WS_CLOSE_PROTOCOL);
    ws_msg_free(&m);
}

/* The byte-wise definition of RFC 6455 section 5.3, to check against. */
static void mask_reference(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

/* ws_mask works a word at a time: it must equal the byte-wise reference at
 * every start alignment, length and payload offset, and touch nothing
 * outside p[0..n). */
static void mask_matches_bytewise(void)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    static const uint64_t offsets[] = {0, 1, 2, 3, 6, 4096 + 1, ((uint64_t)1 << 32) + 3};
    static const size_t big[] = {255, 256, 257, 1023, 4099, 16384, 65537};
    enum { PAD = 16, MAXLEN = 65537 + 64 };
    static uint8_t base[PAD + MAXLEN + PAD + 16], want[PAD + MAXLEN + PAD + 16];
    uint8_t *aligned = base + (size_t)(-(uintptr_t)base & 15);
    uint8_t *walign = want + (size_t)(-(uintptr_t)want & 15);
    for (size_t oi = 0; oi < sizeof offsets / sizeof offsets[0]; oi++) {
        for (size_t a = 0; a < 16; a++) {
            for (size_t li = 0; li < 200 + sizeof big / sizeof big[0]; li++) {
                size_t n = li < 200 ? li : big[li - 200];
                size_t span = PAD + a + n + PAD;
                for (size_t i = 0; i < span; i++)
                    aligned[i] = walign[i] = (uint8_t)(i * 7 + a + n);
                ws_mask(aligned + PAD + a, n, mask, offsets[oi]);
                mask_reference(walign + PAD + a, n, mask, offsets[oi]);
                if (memcmp(aligned, walign, span) != 0) {
                    fprintf(stderr, "ws_mask differs: alignment %zu, length %zu, offset %llu\n", a, n,
                            (unsigned long long)offsets[oi]);
                    CHECK(0);
                }
                check_count++;
            }
        }
    }
    /* Right before an unreadable page, for every length up to 80 (so every
     * alignment of the end too): no access past the slice. */
    for (size_t n = 0; n <= 80; n++) {
        uint8_t src[80], ref[80];
        for (size_t i = 0; i < n; i++)
            src[i] = ref[i] = (uint8_t)(0xA5 ^ i);
        size_t ml;
        uint8_t *g = guarded(src, n, &ml);
        ws_mask(g, n, mask, n);
        mask_reference(ref, n, mask, n);
        CHECK(memcmp(g, ref, n) == 0);
        guarded_free(g, n, ml);
    }
    /* Masking twice is the identity, also across split calls (the decoder
     * unmasks each slice at its own offset within the frame). */
    uint8_t buf[1000], orig[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = orig[i] = (uint8_t)(i * 31);
    ws_mask(buf, sizeof buf, mask, 0);
    for (size_t off = 0; off < sizeof buf;) {
        size_t step = 1 + off % 37;
        if (step > sizeof buf - off)
            step = sizeof buf - off;
        ws_mask(buf + off, step, mask, off);
        off += step;
    }
    CHECK(memcmp(buf, orig, sizeof buf) == 0);
}

int main(void)
{
    TEST(decode_masked);
    TEST(decode_errors);
    TEST(encode);
    TEST(accept_key);
    TEST(utf8_rules);
    TEST(utf8_matches_reference);
    TEST(messages);
    TEST(mask_matches_bytewise);
    TEST_MAIN_END();
}
