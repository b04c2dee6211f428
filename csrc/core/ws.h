/* ws: RFC 6455 WebSocket framing, as an incremental state machine.
 *
 * The decoder walks whatever bytes arrived and reports events: a frame
 * header, a slice of payload (unmasked in place, so the caller's buffer
 * must be writable), and the end of a frame. It never buffers payload, so
 * a relay can pass a 10 MB frame through with constant memory. Protocol
 * errors are returned as the negated close code to send (-1002, -1007,
 * -1009), so the caller can close cleanly with the right reason.
 *
 * ws_msg sits on top for peers that want whole messages (the relay's
 * control channel): it reassembles fragments up to a ceiling and checks
 * UTF-8 in text messages. */
#ifndef CK_WS_H
#define CK_WS_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9, WS_OP_PONG = 10 };
enum { WS_ROLE_SERVER = 0, WS_ROLE_CLIENT = 1 }; /* a server expects masked frames */

enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* Incremental UTF-8 validator: feed slices of one message in order. */
typedef struct ws_utf8 {
    uint32_t need, cp, min;
} ws_utf8;
/* Returns 0 while the bytes so far can start valid UTF-8, -1 otherwise. */
int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n);
/* Returns 0 when the message ended on a character boundary. */
int ws_utf8_done(const ws_utf8 *u);

typedef struct ws_frame {
    int fin, opcode, masked;
    uint8_t mask[4];
    uint64_t len;
} ws_frame;

typedef struct ws_dec {
    int role;
    uint64_t max_frame; /* payload ceiling per frame (1009 beyond) */
    int state;
    uint8_t hdr[14];
    size_t hdr_got, hdr_need;
    ws_frame f;
    uint64_t got; /* payload bytes of the current frame handed out */
    int in_msg;   /* a fragmented data message is open */
    int msg_opcode;
} ws_dec;

enum { WS_EV_NONE, WS_EV_HEADER, WS_EV_DATA, WS_EV_END };
typedef struct ws_ev {
    int type;
    uint8_t *data; /* WS_EV_DATA: unmasked payload slice inside the input */
    size_t len;
} ws_ev;

void ws_dec_init(ws_dec *d, int role, uint64_t max_frame);
/* Consumes bytes and reports at most one event. Returns bytes consumed
 * (possibly 0 with an event), or a negated close code. Call in a loop
 * until it reports WS_EV_NONE. The current frame is in d->f. */
long ws_dec_step(ws_dec *d, uint8_t *buf, size_t len, ws_ev *ev);

/* Writes a frame header to out (14 bytes suffice) and returns its length.
 * A non-NULL mask sets the mask bit; the payload must then be masked with
 * ws_mask(). */
size_t ws_header(uint8_t out[14], int fin, int opcode, uint64_t len, const uint8_t *mask);
/* XORs p[0..n) with mask, where the first byte is payload byte `offset`. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Sec-WebSocket-Accept for a client key; out receives 28 chars + NUL.
 * Returns 0, or -1 when the key is not base64 of 16 bytes. */
int ws_accept_key(const char *key, size_t n, char out[29]);
/* A fresh random client key (24 chars + NUL). */
int ws_client_key(char out[25]);

/* Whole-message reader. */
typedef int (*ws_msg_cb)(void *ud, int opcode, const uint8_t *data, size_t len);
typedef struct ws_msg {
    ws_dec dec;
    buf_t msg;
    int opcode;
    ws_utf8 utf8;
    uint8_t ctl[125];
    size_t ctl_len;
} ws_msg;

void ws_msg_init(ws_msg *m, int role, size_t max_msg);
void ws_msg_free(ws_msg *m);
/* Feeds bytes; calls cb for each complete data message and each control
 * frame (a close frame's payload is checked: a code and UTF-8 reason).
 * A non-zero return from cb stops feeding right after that frame. Returns
 * the bytes consumed (always a count, so that the caller can keep the
 * rest) or a negated close code on protocol errors. */
long ws_msg_feed(ws_msg *m, uint8_t *buf, size_t len, ws_msg_cb cb, void *ud);

/* Builds a close payload (code + reason, <= 125 bytes). Returns its length. */
size_t ws_close_payload(uint8_t out[125], int code, const char *reason);

#endif
