/* fwd: one rendezvous stream, served as HTTP/1.1 towards the API server.
 *
 * Request direction (proxy -> API server): request heads are parsed from
 * the stream and rewritten; bodies are forwarded as they arrive, framed by
 * Content-Length or chunked coding. Authentication per request:
 *   - a bearer token from the trusted OIDC issuer is verified (signature,
 *     issuer, audience, expiry) and the request goes out with the agent's
 *     own credential plus Impersonate-User and Impersonate-Group headers
 *     naming the caller as ident.h maps its claims (upn for members,
 *     object id for guests and applications, by default); any
 *     Impersonate-* header the client sent is refused with 403, so
 *     `kubectl --as` can never borrow the agent's right;
 *   - any other bearer token (a service-account token) is forwarded
 *     untouched and the API server judges it;
 *   - no token: 401, as the API server itself would answer.
 * Refusals are answered in their turn, after the answers to the requests
 * ahead of them, and the stream carries on with the next request; bytes
 * that cannot be framed are answered 400 and end the stream.
 * Response direction: bytes from the API server go back unchanged in
 * binary frames (watches and `logs -f` simply keep streaming).
 *
 * The framer (core/framer.h) holds the invariant this file depends on: no
 * caller byte reaches the API server except inside a head forward_head()
 * parsed, checked and rewrote, as the body that head frames, or after the
 * API server answered 101 to the request that asked to upgrade. Bytes
 * after an upgrade request wait in `in` until that answer is known.
 * Each direction stops reading its source while its sink is full. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fwd.h"

#include "authz.h"
#include "buf.h"
#include "conn.h"
#include "creds.h"
#include "framer.h"
#include "http.h"
#include "ident.h"
#include "jwks.h"
#include "log.h"
#include "url.h"
#include "ws.h"
#include "wsc.h"

#define IN_MAX (256 * 1024)
#define IN_HIGH (128 * 1024)
#define OUT_HEAD_MAX 32768

/* What forward_head did with the head at the front of the input. */
enum { FH_SETTLED, FH_PENDING, FH_FATAL };

typedef struct fwd {
    agent_t *a;
    wsc_t *ws;
    conn_t *up;
    int up_open;
    buf_t in;    /* request stream from the caller, not yet settled */
    framer fr;   /* decides what of `in` may reach the API server */
    int waiting; /* an asynchronous decision (JWKS, azure-rbac) holds the head */
    int pumping, repump;
    int closing;
    /* azure-rbac: the hub's decision for the head at the front of `in` */
    authz_call *check;
    int jwks_waiting, jwks_retried;
    int authz_ready, authz_allowed;
    char authz_level[24], authz_reason[600];
} fwd;

static void fwd_finish(fwd *f)
{
    if (f->closing)
        return;
    f->closing = 1;
    authz_cancel(f->check);
    f->check = NULL;
    if (f->jwks_waiting)
        jwks_forget(f);
    f->jwks_waiting = 0;
    if (f->ws)
        wsc_close(f->ws, WS_CLOSE_NORMAL, "");
    if (f->up)
        conn_close(f->up, 1);
}

/* Ends the stream after a failure the caller cannot be told about in
 * order (a write that failed, a server that broke framing). */
static void fwd_fail(fwd *f, const char *why)
{
    log_kv(LOG_WARN, "stream.failed", "reason", why, NULL);
    if (f->ws)
        wsc_abort(f->ws);
    fwd_finish(f);
}

static void maybe_free(fwd *f)
{
    if (f->ws || f->up)
        return;
    framer_free(&f->fr);
    buf_free(&f->in);
    free(f);
}

/* A Kubernetes Status response (kubectl prints its message) in `out`;
 * returns its length. `close` adds Connection: close. */
static int status_response(char *out, size_t cap, int code, const char *reason, const char *msg_in, int close)
{
    char body[1024], message[700];
    /* The message lands in a JSON string: keep it printable and unquoted. */
    size_t mi = 0;
    for (; msg_in[mi] && mi + 1 < sizeof message; mi++)
        message[mi] =
            (msg_in[mi] == '"' || msg_in[mi] == '\\' || (unsigned char)msg_in[mi] < 0x20) ? ' ' : msg_in[mi];
    message[mi] = '\0';
    int bl = snprintf(body, sizeof body,
                      "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                      "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
                      message, reason, code);
    return snprintf(out, cap,
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
                    code, http_reason(code), bl, close ? "Connection: close\r\n" : "", body);
}

/* Refuses the head last shown by the framer (or, with close, the bad
 * bytes at the front): the answer goes out in its turn, after the
 * responses to the requests ahead of it. Returns FH_SETTLED or FH_FATAL. */
static int refuse(fwd *f, int code, const char *reason, const char *msg, int close)
{
    char resp[1400];
    int n = status_response(resp, sizeof resp, code, reason, msg, close);
    if (framer_refuse(&f->fr, resp, (size_t)n, close) < 0) {
        fwd_fail(f, "out of memory");
        return FH_FATAL;
    }
    return FH_SETTLED;
}

/* Answers at once and ends the stream: only for when the API server
 * cannot be reached, so no answer of its can be pending. */
static void reply_and_close(fwd *f, int code, const char *reason, const char *msg)
{
    char resp[1400];
    int n = status_response(resp, sizeof resp, code, reason, msg, 1);
    if (f->ws)
        (void)wsc_send(f->ws, WS_OP_BINARY, resp, (size_t)n); /* closing anyway */
    fwd_finish(f);
}

static int is_impersonate(const http_header *h)
{
    return h->name_len >= 12 && strncasecmp(h->name, "Impersonate-", 12) == 0;
}

/* Appends to the outgoing head; returns -1 when it would overflow. */
static int put(char *out, size_t *o, const char *p, size_t n)
{
    if (*o + n > OUT_HEAD_MAX)
        return -1;
    memcpy(out + *o, p, n);
    *o += n;
    return 0;
}

static void pump_request(fwd *f);

static void jwks_done(void *ud, int ok)
{
    fwd *f = ud;
    (void)ok; /* verified again either way: the answer decides */
    f->jwks_waiting = 0;
    f->waiting = 0;
    pump_request(f);
}

static void authz_done(void *ud, int allowed, const char *level, const char *reason)
{
    fwd *f = ud;
    f->check = NULL;
    f->authz_ready = 1;
    f->authz_allowed = allowed;
    snprintf(f->authz_level, sizeof f->authz_level, "%s", level);
    snprintf(f->authz_reason, sizeof f->authz_reason, "%s", reason);
    f->waiting = 0;
    pump_request(f);
}

/* Checks who is calling and either writes the rewritten head to the API
 * server (framer_forward) or refuses it (framer_refuse). Returns
 * FH_SETTLED, FH_PENDING when a JWKS fetch or an azure-rbac decision is
 * awaited (the head stays at the front of `in` and is shown again when it
 * arrives), or FH_FATAL after the stream was ended. */
static int forward_head(fwd *f, const http_request *req)
{
    agent_t *a = f->a;
    const http_header *auth = http_find(req->headers, req->nheaders, "Authorization");
    if (!auth || auth->value_len < 8 || strncasecmp(auth->value, "Bearer ", 7) != 0)
        return refuse(f, 401, "Unauthorized", "Unauthorized: a bearer token is required", 0);
    const char *tok = auth->value + 7;
    size_t tl = auth->value_len - 7;
    char iss[512] = "";
    int impersonate = 0;
    jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    if (a->cfg.issuer && jwt_peek_issuer(tok, tl, iss, sizeof iss) == 0 && strcmp(iss, a->cfg.issuer) == 0) {
        char err[JWT_ERRLEN];
        jwt_expect want = {a->cfg.issuer, a->cfg.audience, (int64_t)time(NULL), 60};
        int rc = jwt_verify(tok, tl, &a->keys, &want, &cl, err);
        if (rc == JWT_ERR_UNKNOWN_KEY && !f->jwks_retried && a->cfg.jwks_url) {
            /* Keys may have rotated: hold this request until they are
             * fetched again, then verify once more. */
            f->jwks_retried = 1;
            if (jwks_refresh(a, jwks_done, f) == 0) {
                jwt_claims_free(&cl);
                f->jwks_waiting = 1;
                return FH_PENDING;
            }
        }
        if (rc == JWT_ERR_UNKNOWN_KEY && !a->cfg.jwks_url && creds_reload_jwks(a) == 0) { /* file rewritten */
            jwt_claims_free(&cl);
            rc = jwt_verify(tok, tl, &a->keys, &want, &cl, err);
        }
        f->jwks_retried = 0;
        if (rc != JWT_OK) {
            jwt_claims_free(&cl);
            log_kv(LOG_INFO, "request.unauthenticated", "reason", err, NULL);
            char msg[256];
            snprintf(msg, sizeof msg, "Unauthorized: %s", jwt_strerror(rc));
            return refuse(f, 401, "Unauthorized", msg, 0);
        }
        for (size_t i = 0; i < req->nheaders; i++) {
            if (is_impersonate(&req->headers[i])) {
                jwt_claims_free(&cl);
                return refuse(
                    f, 403, "Forbidden",
                    "Forbidden: impersonation headers are not allowed on requests the agent impersonates", 0);
            }
        }
        impersonate = 1;
    }
    /* An alg:none or foreign token is not ours to judge: it goes through
     * untouched and the API server decides. */
    static char out[OUT_HEAD_MAX];
    size_t o = 0;
    int bad = put(out, &o, req->method, req->method_len) || put(out, &o, " ", 1) ||
              put(out, &o, req->target, req->target_len) || put(out, &o, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < req->nheaders && !bad; i++) {
        const http_header *h = &req->headers[i];
        /* Every Authorization header goes, not just the first: the API
         * server must see the agent's credential and nothing else. */
        if (impersonate && http_eq(h->name, h->name_len, "Authorization"))
            continue;
        bad = put(out, &o, h->name, h->name_len) || put(out, &o, ": ", 2) ||
              put(out, &o, h->value, h->value_len) || put(out, &o, "\r\n", 2);
    }
    /* Two names for one caller: the hub and the groups file know it by
     * object id; the API server sees the mapped name (ident.h). */
    const char *oid = ident_object_id(&cl);
    char user[512] = "", grp[512];
    const char *kind = impersonate ? ident_kind_name(ident_kind_of(&cl)) : "";
    if (impersonate && ident_user(&cl, &a->cfg.ident, user, sizeof user) < 0) {
        log_kv(LOG_INFO, "request.unauthenticated", "oid", oid, "reason", "unusable user name in the token",
               NULL);
        jwt_claims_free(&cl);
        return refuse(f, 401, "Unauthorized", "Unauthorized: the token's user name cannot be impersonated",
                      0);
    }
    if (impersonate && a->azure_rbac && !f->authz_ready) {
        authz_attrs at;
        authz_attrs_of(req->method, req->method_len, req->target, req->target_len, &at);
        int cached = 0;
        authz_result hit;
        f->check =
            authz_check(a, oid, cl.groups, cl.ngroups, cl.groups_overage, &at, authz_done, f, &cached, &hit);
        if (cached) {
            /* A recent decision for the same question (authz.h): no wait. */
            f->authz_ready = 1;
            f->authz_allowed = hit.allowed;
            snprintf(f->authz_level, sizeof f->authz_level, "%s", hit.level);
            snprintf(f->authz_reason, sizeof f->authz_reason, "%s", hit.reason);
        } else {
            jwt_claims_free(&cl);
            if (!f->check)
                return refuse(f, 503, "ServiceUnavailable",
                              "azure-rbac: cannot ask the hub for an access decision", 0);
            return FH_PENDING;
        }
    }
    if (impersonate && a->azure_rbac) {
        f->authz_ready = 0;
        if (f->authz_allowed != 1) {
            log_kv(LOG_INFO, "request.denied", "user", user, "oid", oid, "reason", f->authz_reason, NULL);
            jwt_claims_free(&cl);
            return refuse(f, f->authz_allowed < 0 ? 503 : 403,
                          f->authz_allowed < 0 ? "ServiceUnavailable" : "Forbidden", f->authz_reason, 0);
        }
        /* The hub checked the scope; the API server checks the verb
         * through the ClusterRole bound to this level's group
         * (deploy/agent/azure-rbac.yaml). The agent names this group
         * itself, so no --groups-prefix goes in front of it. */
        char line[200];
        int n =
            snprintf(line, sizeof line, "Impersonate-Group: connectedk8s:azure-rbac:%s\r\n", f->authz_level);
        bad = put(out, &o, line, (size_t)n);
    }
    if (impersonate && !bad) {
        char line[9000];
        int n = snprintf(line, sizeof line, "Authorization: Bearer %s\r\nImpersonate-User: %s\r\n", a->token,
                         user);
        bad = n >= (int)sizeof line || put(out, &o, line, (size_t)n);
        for (size_t g = 0; g < cl.ngroups && !bad; g++) {
            /* A group that cannot be named is not left out: fewer groups
             * would be a different caller. */
            bad = ident_group(cl.groups[g], &a->cfg.ident, grp, sizeof grp) < 0;
            n = snprintf(line, sizeof line, "Impersonate-Group: %s\r\n", grp);
            bad = bad || put(out, &o, line, (size_t)n);
        }
        if (cl.groups_overage && !cl.ngroups) {
            /* Too many groups for the token: ask the configured source
             * rather than refusing the user (Microsoft's agent refuses). */
            char **extra = NULL;
            int ng = creds_lookup_groups(a, oid, &extra);
            if (ng < 0)
                log_kv(LOG_WARN, "request.groups_overage", "user", user, "oid", oid, "note",
                       a->cfg.groups_file ? "no entry in the groups file" : "no --groups-file configured",
                       NULL);
            for (int g = 0; g < ng && !bad; g++) {
                bad = ident_group(extra[g], &a->cfg.ident, grp, sizeof grp) < 0;
                n = snprintf(line, sizeof line, "Impersonate-Group: %s\r\n", grp);
                bad = bad || put(out, &o, line, (size_t)n);
            }
            if (ng > 0)
                creds_free_groups(extra, ng);
        }
    }
    bad = bad || put(out, &o, "\r\n", 2);
    if (bad) {
        jwt_claims_free(&cl);
        return refuse(f, 431, "RequestHeaderFieldsTooLarge", "request head too large after rewriting", 0);
    }
    char path[512];
    url_slice p, q;
    url_split_target(req->target, req->target_len, &p, &q);
    snprintf(path, sizeof path, "%.*s", (int)(p.n < 500 ? p.n : 500), p.p);
    char verb[16];
    snprintf(verb, sizeof verb, "%.*s", (int)(req->method_len < 15 ? req->method_len : 15), req->method);
    /* The audit line: whom the API server was asked to see, never a token. */
    log_kv(LOG_INFO, "request", "user", impersonate ? user : "(bearer passed through)", "kind", kind, "oid",
           impersonate ? oid : "", "name", impersonate ? cl.name : "", "verb", verb, "path", path, NULL);
    jwt_claims_free(&cl);
    if (conn_write(f->up, out, o) < 0) {
        fwd_fail(f, "write to the API server failed");
        return FH_FATAL;
    }
    f->a->requests++;
    framer_forward(&f->fr); /* cannot fail: the framer just showed this head */
    return FH_SETTLED;
}

static size_t pump_response(fwd *f, const uint8_t *d, size_t n);

/* Moves as much of the buffered request stream to the API server as the
 * framer releases and the API server connection takes. Re-entered calls
 * (a callback run from inside) are folded into the running one. */
static void pump_request(fwd *f)
{
    if (f->pumping) {
        f->repump = 1;
        return;
    }
    f->pumping = 1;
    do {
        f->repump = 0;
        while (f->up_open && !f->closing && !f->waiting && conn_writable(f->up)) {
            uint8_t *d = buf_data(&f->in);
            size_t len = buf_len(&f->in), n;
            http_request req;
            int status;
            const char *why;
            framer_ev ev = framer_request(&f->fr, d, len, &req, &n, &status, &why);
            if (ev == FRAMER_MORE || ev == FRAMER_HOLD)
                break;
            if (ev == FRAMER_HEAD) {
                int fh = forward_head(f, &req);
                if (fh == FH_PENDING) {
                    f->waiting = 1;
                    break;
                }
                if (fh == FH_FATAL)
                    break;
            } else if (ev == FRAMER_BODY || ev == FRAMER_PIPE) {
                if (conn_write(f->up, d, n) < 0) {
                    fwd_fail(f, "write to the API server failed");
                    break;
                }
            } else if (ev == FRAMER_BAD && status == 0) {
                fwd_fail(f, why); /* cut inside a forwarded body: no answer can come in turn */
                break;
            } else if (ev == FRAMER_BAD) {
                log_kv(LOG_INFO, "request.bad_framing", "reason", why, NULL);
                char msg[160];
                snprintf(msg, sizeof msg, "Bad request: %s", why);
                if (refuse(f, status, status == 431 ? "RequestHeaderFieldsTooLarge" : "BadRequest", msg, 1) !=
                    FH_SETTLED)
                    break;
                n = len;
            } else if (ev == FRAMER_DONE) {
                buf_clear(&f->in); /* nothing after a stream-ending refusal is read */
                break;
            }
            /* FRAMER_DISCARD: a refused request's body, dropped. */
            buf_consume(&f->in, n);
        }
        /* Refusals answer in their turn, which may be now. */
        if (!f->closing)
            pump_response(f, NULL, 0);
    } while (f->repump && !f->closing);
    f->pumping = 0;
    if (f->ws && !f->closing && buf_len(&f->in) < IN_HIGH)
        wsc_resume(f->ws);
}

static int to_relay(void *ud, const void *p, size_t n)
{
    fwd *f = ud;
    return wsc_send(f->ws, WS_OP_BINARY, p, n);
}

/* Carries the API server's answers (and the agent's own refusals, in
 * their turn) back to the caller. Returns how much of d was consumed; the
 * rest is an incomplete response head that stays in the connection's
 * buffer. */
static size_t pump_response(fwd *f, const uint8_t *d, size_t n)
{
    if (!f->ws || f->closing)
        return n;
    size_t used;
    int progress;
    int rc = framer_answer(&f->fr, d, n, to_relay, f, &used, &progress);
    if (rc == FRAMER_MORE)
        return used;
    if (rc == FRAMER_DONE)
        fwd_finish(f);
    else
        fwd_fail(f, rc == FRAMER_BAD ? "the API server's response could not be framed"
                                     : "write to the relay failed");
    return n;
}

/* ---- rendezvous side ---------------------------------------------------- */

static void ws_open(wsc_t *w, int status, int http_status, const char *reason)
{
    fwd *f = wsc_data(w);
    if (status == 0)
        return;
    char st[8];
    snprintf(st, sizeof st, "%d", http_status);
    log_kv(LOG_WARN, "stream.rendezvous_failed", "status", st, "reason", reason, NULL);
    f->ws = NULL;
    if (f->up)
        conn_close(f->up, 0);
    maybe_free(f);
}

static void ws_data(wsc_t *w, const uint8_t *d, size_t n)
{
    fwd *f = wsc_data(w);
    if (f->closing)
        return;
    if (buf_append(&f->in, d, n) < 0) { /* cannot happen while pausing at IN_HIGH */
        fwd_finish(f);
        return;
    }
    if (buf_len(&f->in) >= IN_HIGH)
        wsc_pause(w);
    pump_request(f);
}

static void ws_drain(wsc_t *w)
{
    fwd *f = wsc_data(w);
    if (f->up)
        conn_resume(f->up);
}

static void ws_close(wsc_t *w, int code, const char *reason)
{
    (void)code, (void)reason;
    fwd *f = wsc_data(w);
    f->ws = NULL;
    if (f->up)
        conn_close(f->up, 1);
    maybe_free(f);
}

static const wsc_cbs ws_cbs = {
    .on_open = ws_open, .on_data = ws_data, .on_drain = ws_drain, .on_close = ws_close};

/* ---- API server side ---------------------------------------------------- */

static void up_connect(conn_t *c, int status)
{
    fwd *f = conn_data(c);
    if (status < 0) {
        log_kv(LOG_ERROR, "stream.apiserver_unreachable", "error", conn_error(c, status), NULL);
        if (f->ws)
            reply_and_close(f, 502, "ServiceUnavailable", "the agent cannot reach the API server");
        return;
    }
    f->up_open = 1;
    pump_request(f);
}

static size_t up_data(conn_t *c, uint8_t *d, size_t n)
{
    fwd *f = conn_data(c);
    if (!f->ws || f->closing)
        return n;
    size_t used = pump_response(f, d, n);
    if (f->ws && !f->closing && !wsc_writable(f->ws))
        conn_pause(c); /* resumed by ws_drain */
    /* An answer may have released requests held behind it (an upgrade
     * refused, room in the queue of answers). */
    if (!f->closing)
        pump_request(f);
    return used;
}

static void up_drain(conn_t *c)
{
    fwd *f = conn_data(c);
    pump_request(f);
}

static void up_close(conn_t *c, int err)
{
    (void)err;
    fwd *f = conn_data(c);
    f->up = NULL;
    f->up_open = 0;
    if (f->ws)
        wsc_close(f->ws, WS_CLOSE_NORMAL, "");
    maybe_free(f);
}

static const conn_cbs up_cbs = {
    .on_data = up_data, .on_drain = up_drain, .on_connect = up_connect, .on_close = up_close};

void fwd_accept(agent_t *a, const char *address)
{
    fwd *f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->a = a;
    buf_init(&f->in, IN_MAX);
    framer_init(&f->fr);
    wsc_opts o = {.stream = 1, .via = a->http};
    o.conn = conn_default_opts;
    f->ws = wsc_connect(a->loop, address, a->relay_tls, NULL, &ws_cbs, f, &o);
    if (!f->ws) {
        log_kv(LOG_WARN, "stream.bad_address", NULL);
        buf_free(&f->in);
        free(f);
        return;
    }
    /* The API server is dialled directly, never through the proxy. */
    f->up = conn_connect(a->loop, a->api_host, a->api_port, a->api_tls, NULL, &up_cbs, f, NULL);
    if (!f->up)
        fwd_finish(f); /* out of memory: the rendezvous closes unanswered */
    a->streams++;
}
