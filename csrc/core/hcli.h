/* hcli: one HTTP/1.1 request over conn (TLS or not), answer in memory.
 *
 * For the agent's small control-plane calls (registration, heartbeat,
 * access checks): the request goes out with Connection: close, the answer
 * is read up to a ceiling (Content-Length or until close; chunked answers
 * are decoded), and one callback reports the outcome. A deadline covers
 * the whole exchange, so a hub that stops answering never holds a call. */
#ifndef CK_HCLI_H
#define CK_HCLI_H
#include <stddef.h>
#include <uv.h>

#include "tls.h"

typedef struct hcli hcli_t;

/* status: the HTTP status (> 0), or < 0 on failure with a sentence in
 * `err` (connect, TLS, timeout, oversized or malformed answer). body is
 * NUL-terminated and valid during the call. */
typedef void (*hcli_cb)(void *ud, int status, const char *body, size_t len, const char *err);

typedef struct hcli_opts {
    size_t max_response; /* default 1 MiB */
    unsigned timeout_ms; /* default 15 s */
} hcli_opts;

/* `headers`: NULL-terminated "Name: value" strings. Returns NULL only for
 * a bad URL or allocation failure (cb is then not called). */
hcli_t *hcli_request(uv_loop_t *loop, const char *url, tls_ctx *tls, const char *method,
                     const char *const *headers, const char *body, size_t body_len, const hcli_opts *o,
                     hcli_cb cb, void *ud);
/* Abandons a call: cb is not called. */
void hcli_cancel(hcli_t *h);

#endif
