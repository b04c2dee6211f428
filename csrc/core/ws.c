/* ws: WebSocket codec. See ws.h. */
#include "ws.h"

#include <openssl/sha.h>
#include <string.h>

#include "enc.h"

int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (u->need == 0) {
            if (b < 0x80) {
                /* The relay checks every text frame it splices; text is
                 * mostly ASCII, so skip 8 such bytes per step while no
                 * byte of the word has its high bit set. */
                while (n - i > 8) {
                    uint64_t w;
                    memcpy(&w, p + i + 1, 8);
                    if (w & 0x8080808080808080u)
                        break;
                    i += 8;
                }
                continue;
            }
            if (b >= 0xC2 && b <= 0xDF) {
                u->need = 1, u->cp = b & 0x1F, u->min = 0x80;
            } else if (b >= 0xE0 && b <= 0xEF) {
                u->need = 2, u->cp = b & 0x0F, u->min = 0x800;
            } else if (b >= 0xF0 && b <= 0xF4) {
                u->need = 3, u->cp = b & 0x07, u->min = 0x10000;
            } else {
                return -1;
            }
            continue;
        }
        if ((b & 0xC0) != 0x80)
            return -1;
        u->cp = u->cp << 6 | (b & 0x3F);
        /* Fail as soon as a prefix cannot become valid (overlong, surrogate
         * or beyond U+10FFFF), as RFC 6455 section 8.1 asks. */
        if (u->need == 2 && u->min == 0x800 && (u->cp < 0x20 || (u->cp >= 0x360 && u->cp <= 0x37F)))
            return -1;
        if (u->need == 3 && u->min == 0x10000 && (u->cp < 0x10 || u->cp > 0x10F))
            return -1;
        if (--u->need == 0) {
            if (u->cp < u->min || u->cp > 0x10FFFF || (u->cp >= 0xD800 && u->cp <= 0xDFFF))
                return -1;
        }
    }
    return 0;
}

int ws_utf8_done(const ws_utf8 *u)
{
    return u->need == 0 ? 0 : -1;
}

enum { ST_HDR, ST_PAYLOAD };

void ws_dec_init(ws_dec *d, int role, uint64_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->role = role;
    d->max_frame = max_frame;
    d->hdr_need = 2;
}

/* Checks a complete header and fills d->f. Returns 0 or a negated code. */
static int finish_header(ws_dec *d)
{
    const uint8_t *h = d->hdr;
    ws_frame *f = &d->f;
    f->fin = h[0] >> 7;
    f->opcode = h[0] & 0x0F;
    f->masked = h[1] >> 7;
    uint64_t len = h[1] & 0x7F;
    size_t o = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        o = 4;
        if (len < 126)
            return -WS_CLOSE_PROTOCOL; /* not the minimal encoding */
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        o = 10;
        if (len >> 63 || len <= 0xFFFF)
            return -WS_CLOSE_PROTOCOL;
    }
    if (f->masked)
        memcpy(f->mask, h + o, 4);
    f->len = len;
    if (h[0] & 0x70)
        return -WS_CLOSE_PROTOCOL; /* no extension negotiated */
    switch (f->opcode) {
    case WS_OP_CONT:
        if (!d->in_msg)
            return -WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (d->in_msg)
            return -WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!f->fin || len > 125)
            return -WS_CLOSE_PROTOCOL;
        break;
    default: return -WS_CLOSE_PROTOCOL;
    }
    if (d->role == WS_ROLE_SERVER && !f->masked)
        return -WS_CLOSE_PROTOCOL;
    if (d->role == WS_ROLE_CLIENT && f->masked)
        return -WS_CLOSE_PROTOCOL;
    if (len > d->max_frame)
        return -WS_CLOSE_TOO_BIG;
    if (f->opcode < 8) {
        if (f->opcode != WS_OP_CONT)
            d->msg_opcode = f->opcode;
        d->in_msg = !f->fin;
    }
    return 0;
}

long ws_dec_step(ws_dec *d, uint8_t *buf, size_t len, ws_ev *ev)
{
    ev->type = WS_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if (d->state == ST_HDR) {
        size_t i = 0;
        while (d->hdr_got < d->hdr_need && i < len) {
            d->hdr[d->hdr_got++] = buf[i++];
            if (d->hdr_got == 2) {
                size_t l7 = d->hdr[1] & 0x7F;
                d->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((d->hdr[1] & 0x80) ? 4 : 0);
            }
        }
        if (d->hdr_got < d->hdr_need)
            return (long)i;
        int rc = finish_header(d);
        if (rc < 0)
            return rc;
        d->state = ST_PAYLOAD;
        d->got = 0;
        ev->type = WS_EV_HEADER;
        return (long)i;
    }
    /* ST_PAYLOAD */
    if (d->got == d->f.len) {
        d->state = ST_HDR;
        d->hdr_got = 0;
        d->hdr_need = 2;
        ev->type = WS_EV_END;
        return 0;
    }
    if (len == 0)
        return 0;
    uint64_t left = d->f.len - d->got;
    size_t take = len < left ? len : (size_t)left;
    if (d->f.masked)
        ws_mask(buf, take, d->f.mask, d->got);
    d->got += take;
    ev->type = WS_EV_DATA;
    ev->data = buf;
    ev->len = take;
    return (long)take;
}

size_t ws_header(uint8_t out[14], int fin, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t o = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        o = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        o = 10;
    }
    if (mask) {
        memcpy(out + o, mask, 4);
        o += 4;
    }
    return o;
}

/* Masking touches every payload byte on both ends of each client hop, so
 * it runs a word at a time: byte-wise up to an 8-byte boundary of p, then
 * 32 bytes per round as four aligned 64-bit XORs (which the compiler may
 * turn into vector instructions), then the tail byte-wise. The 64-bit key
 * is the 4-byte mask rotated to the payload position of that boundary and
 * repeated; memcpy keeps the loads and stores free of aliasing rules. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    size_t i = 0;
    size_t head = (size_t)(-(uintptr_t)p & 7);
    if (head > n)
        head = n;
    for (; i < head; i++)
        p[i] ^= mask[(offset + i) & 3];
    if (n - i >= 8) {
        uint8_t k8[8];
        for (int j = 0; j < 8; j++)
            k8[j] = mask[(offset + i + (size_t)j) & 3];
        uint64_t k;
        memcpy(&k, k8, 8);
        for (; n - i >= 32; i += 32) {
            uint64_t w[4];
            memcpy(w, p + i, 32);
            w[0] ^= k, w[1] ^= k, w[2] ^= k, w[3] ^= k;
            memcpy(p + i, w, 32);
        }
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= k;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

int ws_accept_key(const char *key, size_t n, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t raw[18];
    if (n != 24 || enc_b64_decode(key, n, raw, sizeof raw) != 16)
        return -1;
    char cat[24 + sizeof guid];
    memcpy(cat, key, 24);
    memcpy(cat + 24, guid, sizeof guid - 1);
    uint8_t dig[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, 24 + sizeof guid - 1, dig);
    return enc_b64_encode(dig, sizeof dig, out, 29) == 28 ? 0 : -1;
}

int ws_client_key(char out[25])
{
    uint8_t raw[16];
    if (enc_random(raw, sizeof raw) < 0)
        return -1;
    return enc_b64_encode(raw, sizeof raw, out, 25) == 24 ? 0 : -1;
}

void ws_msg_init(ws_msg *m, int role, size_t max_msg)
{
    memset(m, 0, sizeof *m);
    /* A single frame can never exceed the message ceiling either. */
    ws_dec_init(&m->dec, role, max_msg);
    buf_init(&m->msg, max_msg);
}

void ws_msg_free(ws_msg *m)
{
    buf_free(&m->msg);
}

/* A close payload is empty, or a valid code plus a UTF-8 reason. */
static int close_payload_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 1;
    if (n == 1)
        return 0;
    int code = p[0] << 8 | p[1];
    int valid =
        (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
    ws_utf8 u = {0};
    return valid && ws_utf8_feed(&u, p + 2, n - 2) == 0 && ws_utf8_done(&u) == 0;
}

long ws_msg_feed(ws_msg *m, uint8_t *buf, size_t len, ws_msg_cb cb, void *ud)
{
    size_t off = 0;
    for (;;) {
        ws_ev ev;
        long n = ws_dec_step(&m->dec, buf + off, len - off, &ev);
        if (n < 0)
            return n;
        off += (size_t)n;
        if (ev.type == WS_EV_NONE)
            break;
        int op = m->dec.f.opcode;
        if (ev.type == WS_EV_HEADER) {
            if (op >= 8) {
                m->ctl_len = 0;
            } else if (op != WS_OP_CONT) {
                buf_clear(&m->msg);
                m->opcode = op;
                memset(&m->utf8, 0, sizeof m->utf8);
            }
            if (op < 8 && m->dec.f.len > buf_room(&m->msg))
                return -WS_CLOSE_TOO_BIG;
        } else if (ev.type == WS_EV_DATA) {
            if (op >= 8) {
                memcpy(m->ctl + m->ctl_len, ev.data, ev.len);
                m->ctl_len += ev.len;
            } else {
                if (m->opcode == WS_OP_TEXT && ws_utf8_feed(&m->utf8, ev.data, ev.len) < 0)
                    return -WS_CLOSE_BAD_DATA;
                if (buf_append(&m->msg, ev.data, ev.len) < 0)
                    return -WS_CLOSE_TOO_BIG;
            }
        } else { /* WS_EV_END */
            int rc = 0;
            if (op >= 8) {
                if (op == WS_OP_CLOSE && !close_payload_ok(m->ctl, m->ctl_len))
                    return -WS_CLOSE_PROTOCOL;
                rc = cb(ud, op, m->ctl, m->ctl_len);
            } else if (m->dec.f.fin) {
                if (m->opcode == WS_OP_TEXT && ws_utf8_done(&m->utf8) < 0)
                    return -WS_CLOSE_BAD_DATA;
                rc = cb(ud, m->opcode, buf_data(&m->msg), buf_len(&m->msg));
                buf_clear(&m->msg);
            }
            if (rc)
                return (long)off;
        }
    }
    return (long)off;
}

size_t ws_close_payload(uint8_t out[125], int code, const char *reason)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > 123)
        n = 123;
    if (n)
        memcpy(out + 2, reason, n);
    return 2 + n;
}
