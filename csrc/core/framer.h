/* framer: the request stream and the response stream of one HTTP/1.1
 * connection that a relay rewrites on its way through (the agent in front
 * of the API server, the proxy in front of the relay).
 *
 * The invariant it exists for: no byte from the client side leaves except
 *   - inside a request head the caller was shown (FRAMER_HEAD) and chose
 *     to forward after rewriting it itself,
 *   - as the body of such a request, framed by that head's one
 *     Content-Length or chunked coding, or
 *   - after the server answered 101 Switching Protocols to the request
 *     that asked to upgrade.
 * After a request with an Upgrade header nothing more of the client's is
 * released until that request's answer is known: on 101 the held bytes
 * become the pipe's first bytes, on any other final status they are
 * parsed as ordinary requests. A request the caller refuses is answered
 * with the caller's own bytes in its turn, after the responses to the
 * requests ahead of it, and its body is dropped.
 *
 * The framer does no I/O and copies nothing of the streams: the caller
 * keeps each direction's bytes in its own buffer, shows the framer the
 * unconsumed bytes, and acts on the event it gets back. Every event with
 * a length covers bytes at the front of what was shown; the caller drops
 * them once it has acted (for FRAMER_HEAD: after framer_forward() or
 * framer_refuse()). Parsed slices point into the caller's buffer.
 *
 * Framing rules are the strict ones of http.c plus, for requests:
 * origin-form targets only (absolute-form, authority-form and CONNECT are
 * refused), no Transfer-Encoding on HTTP/1.0, no body on an upgrade
 * request. At most FRAMER_MAX_INFLIGHT requests wait for answers; more
 * are held (the caller stops reading: backpressure). */
#ifndef CK_FRAMER_H
#define CK_FRAMER_H
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define FRAMER_MAX_INFLIGHT 16

typedef enum framer_ev {
    FRAMER_MORE,    /* nothing to do until more bytes arrive on this side */
    FRAMER_HOLD,    /* requests: nothing until a response makes progress */
    FRAMER_HEAD,    /* a head of n bytes, parsed into *req / *res */
    FRAMER_BODY,    /* n bytes of the current message's body (framing included): pass on */
    FRAMER_DISCARD, /* requests: n bytes of a refused request's body: drop */
    FRAMER_PIPE,    /* n bytes after a 101: pass on */
    FRAMER_LOCAL,   /* responses: the caller's own answer is due: send *local, n bytes */
    FRAMER_BAD,     /* cannot be framed; requests: *status (400/431/501) says why */
    FRAMER_DONE,    /* this side is finished for good: requests: drop n (all) bytes, now and
                     * whenever more arrive; responses: close */
} framer_ev;

typedef struct framer_entry {
    unsigned head_method : 1; /* the answer to HEAD has no body */
    unsigned upgrade : 1;
    unsigned local : 1; /* refused: answered with `answer` */
    unsigned close : 1; /* close after `answer` */
    char *answer;
    size_t answer_len;
} framer_entry;

typedef struct framer {
    int rq, rs;                /* request and response side states */
    uint64_t rq_left, rs_left; /* Content-Length bytes left */
    int rq_discard;            /* the current request body is dropped */
    http_chunked rq_ch, rs_ch;
    size_t rq_last; /* bytes already searched for the end of a head */
    /* what the last FRAMER_HEAD on the request side found */
    size_t pend_len;
    int pend_kind;
    uint64_t pend_blen;
    unsigned pend_head : 1, pend_upgrade : 1;
    /* one slot beyond the limit: a request whose body turns out malformed
     * after it was forwarded still needs room for its refusal */
    framer_entry q[FRAMER_MAX_INFLIGHT + 1];
    unsigned q_head, q_len;
    char *sent;        /* the last FRAMER_LOCAL answer, freed on the next call */
    uint64_t requests; /* heads forwarded or refused */
} framer;

void framer_init(framer *f);
void framer_free(framer *f);

/* The request side. On FRAMER_HEAD, *n is the head's length and *req its
 * parse; the head stays at the front (shown again on the next call) until
 * framer_forward() or framer_refuse() settles it, so the caller may wait
 * for an asynchronous decision. On FRAMER_BAD, *status is the status to
 * answer with (400, 431) and *why a short reason; the caller answers with
 * framer_refuse(close=1), except when *status is 0: the bad bytes were
 * inside the body of a request already forwarded, the server holds part
 * of it and will not answer, so the caller ends both sides at once. */
framer_ev framer_request(framer *f, const uint8_t *d, size_t len, http_request *req, size_t *n, int *status,
                         const char **why);
/* The head last shown goes out (rewritten by the caller). Returns 0, or
 * -1 when no head is pending. */
int framer_forward(framer *f);
/* The head last shown (or the bad bytes) is answered with `answer` in its
 * turn; the framer keeps a copy. close: nothing after it is read, and the
 * response side reports FRAMER_DONE once the answer is out. Returns 0, or
 * -1 (no memory: the caller should drop the connection). */
int framer_refuse(framer *f, const char *answer, size_t len, int close);

/* The response side. FRAMER_HEAD/BODY/PIPE: pass d[0..n) on unchanged.
 * FRAMER_LOCAL: send (*local, n) (valid until the next framer call),
 * which consumes nothing of d. FRAMER_BAD: the server's bytes cannot be
 * framed, or answer no request: close both sides. FRAMER_DONE: close
 * after what was sent. Call with len 0 to learn whether a local answer is
 * due. */
framer_ev framer_response(framer *f, const uint8_t *d, size_t len, http_response *res, size_t *n,
                          const char **local);

/* The response side in one call, for a caller that passes answers on
 * as they come: the server's bytes in d go out unchanged (coalesced into
 * as few writes as the framing allows) and the caller's own answers in
 * their turn, all through write(ud, p, n), which returns < 0 on failure.
 * *used receives how much of d was consumed (the rest is an incomplete
 * head, to be shown again with more bytes) and *progress whether
 * anything was written. Returns FRAMER_MORE (wait for more bytes),
 * FRAMER_DONE (close now), FRAMER_BAD (the server's bytes cannot be
 * framed: close both sides) or -1 (a write failed). */
typedef int (*framer_write_fn)(void *ud, const void *p, size_t n);
int framer_answer(framer *f, const uint8_t *d, size_t n, framer_write_fn write, void *ud, size_t *used,
                  int *progress);

/* Requests forwarded or refused and still waiting for their answer. */
unsigned framer_inflight(const framer *f);
/* Both directions are a byte pipe (after a 101). */
int framer_piped(const framer *f);

#endif
