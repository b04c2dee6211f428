/* tls: OpenSSL sessions over our own queue BIOs. See tls.h. */
#include "tls.h"

#include "buf.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Client session cache: the newest resumable session per server name.
 * A daemon's client context serves one or two peers (the relay, the API
 * server), so a handful of slots replaced round-robin is enough. */
#define TLS_CACHE_SLOTS 8

typedef struct tls_cached {
    char host[256];
    SSL_SESSION *sess;
} tls_cached;

struct tls_ctx {
    SSL_CTX *ctx;
    unsigned char alpn[64];
    size_t alpn_len;
    int is_server;
    tls_cached cache[TLS_CACHE_SLOTS];
    unsigned cache_next;
};

struct tls_sess {
    SSL *ssl;
    tls_ctx *owner;
    char host[256];   /* client: the cache key (server name as dialled) */
    BIO *rbio, *wbio; /* network -> OpenSSL, OpenSSL -> network */
    buf_t in, out;    /* what those two BIOs hold */
    char err[TLS_ERRLEN];
};

/* The BIOs between OpenSSL and the caller are queues of our own (buf_t)
 * rather than OpenSSL's memory BIOs: a memory BIO zero-fills every byte
 * it grows into before copying the record over it (BUF_MEM_grow_clean),
 * which on the bulk path cost as much as a third copy of all ciphertext.
 * A buf_t reuses its storage once drained and never clears it. The
 * ceiling only guards against a caller that never takes its output. */
#define BIO_QUEUE_MAX ((size_t)64 << 20)

/* A drained input queue gives back storage beyond one record's worth, so
 * an idle connection (a watch between events) keeps no burst-sized
 * ciphertext buffer; a busy one pays one malloc per burst (bench/bytes:
 * +0.1% instructions). The output queue keeps its storage, since every
 * write refills it at once; tls_sess_take_all hands it off instead. */
#define QUEUE_KEEP 16384

static void settle(buf_t *q)
{
    if (buf_len(q) == 0 && q->cap > QUEUE_KEEP)
        buf_free(q);
}

static int qbio_write(BIO *b, const char *p, int n)
{
    BIO_clear_retry_flags(b);
    if (n <= 0)
        return 0;
    return buf_append(BIO_get_data(b), p, (size_t)n) == 0 ? n : -1;
}

static int qbio_read(BIO *b, char *p, int n)
{
    buf_t *q = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t k = buf_len(q) < (size_t)n ? buf_len(q) : (size_t)(n < 0 ? 0 : n);
    if (k == 0) {
        BIO_set_retry_read(b); /* drained: "try again", never EOF */
        return -1;
    }
    memcpy(p, buf_data(q), k);
    buf_consume(q, k);
    settle(q);
    return (int)k;
}

static long qbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_PENDING: return (long)buf_len(BIO_get_data(b));
    case BIO_CTRL_WPENDING: return 0;
    case BIO_CTRL_FLUSH: return 1;
    default: return 0;
    }
}

static int qbio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *qbio_method;
static void qbio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ck queue");
    if (m && BIO_meth_set_write(m, qbio_write) && BIO_meth_set_read(m, qbio_read) &&
        BIO_meth_set_ctrl(m, qbio_ctrl) && BIO_meth_set_create(m, qbio_create))
        qbio_method = m;
    else
        BIO_meth_free(m);
}

static BIO *qbio_new(buf_t *q)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, qbio_method_init);
    BIO *b = qbio_method ? BIO_new(qbio_method) : NULL;
    if (b)
        BIO_set_data(b, q);
    return b;
}

static void set_err(char *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[160] = "";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(err, TLS_ERRLEN, "%s%s%s", what, e ? ": " : "", detail);
}

static SSL_CTX *base_ctx(int server)
{
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (server) {
        /* Resumption on a server that verifies client certificates needs a
         * session id context: without one OpenSSL fails the handshake of
         * every client that offers a session. Tickets (on by default) then
         * let our own agents and proxies resume. */
        static const unsigned char sid_ctx[] = "connectedk8s";
        SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
    }
    return c;
}

static tls_cached *cache_find(tls_ctx *t, const char *host)
{
    for (int i = 0; i < TLS_CACHE_SLOTS; i++)
        if (t->cache[i].sess && strcmp(t->cache[i].host, host) == 0)
            return &t->cache[i];
    return NULL;
}

static void cache_drop(tls_ctx *t, const char *host)
{
    tls_cached *e = cache_find(t, host);
    if (e) {
        SSL_SESSION_free(e->sess);
        e->sess = NULL;
    }
}

/* OpenSSL hands over each new session (TLS 1.3: each ticket, after the
 * handshake). The cache keeps a copy, never the connection's own object:
 * OpenSSL marks a connection's session unresumable when the connection
 * ends without close_notify, and a dropped connection must not spoil the
 * ticket for the next one. Returns 0: the reference stays OpenSSL's. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tls_sess *s = SSL_get_app_data(ssl);
    if (!s || !s->owner || !SSL_SESSION_is_resumable(sess))
        return 0;
    sess = SSL_SESSION_dup(sess);
    if (!sess)
        return 0;
    tls_ctx *t = s->owner;
    tls_cached *e = cache_find(t, s->host);
    if (!e) {
        e = &t->cache[t->cache_next++ % TLS_CACHE_SLOTS];
        SSL_SESSION_free(e->sess);
        snprintf(e->host, sizeof e->host, "%s", s->host);
    } else {
        SSL_SESSION_free(e->sess);
    }
    e->sess = sess;
    return 0;
}

/* Offers the cached session for s->host, unless it has expired. */
static void offer_session(tls_sess *s)
{
    tls_cached *e = cache_find(s->owner, s->host);
    if (!e)
        return;
    time_t now = time(NULL);
    if (SSL_SESSION_get_time(e->sess) + SSL_SESSION_get_timeout(e->sess) <= now) {
        cache_drop(s->owner, s->host);
        return;
    }
    /* A copy again, for the same reason as in on_new_session. */
    SSL_SESSION *d = SSL_SESSION_dup(e->sess);
    if (d) {
        (void)SSL_set_session(s->ssl, d); /* a full handshake if refused */
        SSL_SESSION_free(d);
    }
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    tls_ctx *c = arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned)c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static tls_ctx *wrap(SSL_CTX *c, int server)
{
    tls_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        SSL_CTX_free(c);
        return NULL;
    }
    t->ctx = c;
    t->is_server = server;
    return t;
}

tls_ctx *tls_server_ctx(const char *cert_file, const char *key_file, const char *client_ca_file,
                        char err[TLS_ERRLEN])
{
    SSL_CTX *c = base_ctx(1);
    if (!c) {
        set_err(err, "cannot create TLS context");
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
        set_err(err, "cannot load the server certificate");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        set_err(err, "cannot load the server key (or it does not match the certificate)");
        goto fail;
    }
    if (client_ca_file) {
        if (SSL_CTX_load_verify_locations(c, client_ca_file, NULL) != 1) {
            set_err(err, "cannot load the client CA file");
            goto fail;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return wrap(c, 1);
fail:
    SSL_CTX_free(c);
    return NULL;
}

/* Loads the first PEM object of `pem` as certificate or key. */
static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

tls_ctx *tls_server_ctx_mem(const char *cert_pem, const char *key_pem, const char *client_ca_pem,
                            char err[TLS_ERRLEN])
{
    SSL_CTX *c = base_ctx(1);
    X509 *crt = NULL, *ca = NULL;
    EVP_PKEY *key = NULL;
    if (!c) {
        set_err(err, "cannot create TLS context");
        return NULL;
    }
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    BIO_free(kb);
    crt = pem_cert(cert_pem);
    if (!crt || !key || SSL_CTX_use_certificate(c, crt) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        set_err(err, "cannot use the server certificate and key");
        goto fail;
    }
    if (client_ca_pem) {
        ca = pem_cert(client_ca_pem);
        if (!ca || X509_STORE_add_cert(SSL_CTX_get_cert_store(c), ca) != 1) {
            set_err(err, "cannot use the client CA");
            goto fail;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    X509_free(crt);
    X509_free(ca);
    EVP_PKEY_free(key);
    return wrap(c, 1);
fail:
    X509_free(crt);
    X509_free(ca);
    EVP_PKEY_free(key);
    SSL_CTX_free(c);
    return NULL;
}

tls_ctx *tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                        char err[TLS_ERRLEN])
{
    SSL_CTX *c = base_ctx(0);
    if (!c) {
        set_err(err, "cannot create TLS context");
        return NULL;
    }
    int ok = ca_file ? SSL_CTX_load_verify_locations(c, ca_file, NULL) : SSL_CTX_set_default_verify_paths(c);
    if (ok != 1) {
        set_err(err, ca_file ? "cannot load the CA file" : "cannot load the system CA store");
        goto fail;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* Our own cache (see on_new_session): OpenSSL's internal store is
     * keyed for servers, not by the name a client dialled. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    if (cert_file && key_file &&
        (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1)) {
        set_err(err, "cannot load the client certificate or key");
        goto fail;
    }
    return wrap(c, 0);
fail:
    SSL_CTX_free(c);
    return NULL;
}

int tls_ctx_set_alpn(tls_ctx *t, const char *protos)
{
    /* "a,b" -> wire format: length-prefixed names. */
    size_t o = 0;
    const char *p = protos;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n > 255 || o + 1 + n > sizeof t->alpn)
            return -1;
        t->alpn[o++] = (unsigned char)n;
        memcpy(t->alpn + o, p, n);
        o += n;
        p += n + (e ? 1 : 0);
    }
    t->alpn_len = o;
    if (t->is_server)
        SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, t);
    else if (SSL_CTX_set_alpn_protos(t->ctx, t->alpn, (unsigned)o) != 0)
        return -1;
    return 0;
}

void tls_ctx_free(tls_ctx *t)
{
    if (!t)
        return;
    for (int i = 0; i < TLS_CACHE_SLOTS; i++)
        SSL_SESSION_free(t->cache[i].sess);
    SSL_CTX_free(t->ctx);
    free(t);
}

static int is_ip_literal(const char *h)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(h);
    if (!ip)
        return 0;
    ASN1_OCTET_STRING_free(ip);
    return 1;
}

tls_sess *tls_sess_new(tls_ctx *c, int is_server, const char *host)
{
    tls_sess *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    buf_init(&s->in, BIO_QUEUE_MAX);
    buf_init(&s->out, BIO_QUEUE_MAX);
    s->ssl = SSL_new(c->ctx);
    s->rbio = qbio_new(&s->in);
    s->wbio = qbio_new(&s->out);
    if (!s->ssl || !s->rbio || !s->wbio)
        goto fail;
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_app_data(s->ssl, s);
    if (is_server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        s->owner = c;
        snprintf(s->host, sizeof s->host, "%s", host ? host : "");
        if (host && *host) {
            if (is_ip_literal(host)) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host) != 1)
                    goto fail_ssl;
            } else {
                SSL_set_tlsext_host_name(s->ssl, host);
                if (SSL_set1_host(s->ssl, host) != 1)
                    goto fail_ssl;
            }
        }
        offer_session(s);
    }
    return s;
fail:
    BIO_free(s->rbio);
    BIO_free(s->wbio);
fail_ssl:
    SSL_free(s->ssl);
    buf_free(&s->in);
    buf_free(&s->out);
    free(s);
    return NULL;
}

void tls_sess_free(tls_sess *s)
{
    if (!s)
        return;
    SSL_free(s->ssl); /* frees both BIOs */
    buf_free(&s->in);
    buf_free(&s->out);
    free(s);
}

int tls_sess_feed(tls_sess *s, const void *p, size_t n)
{
    return buf_append(&s->in, p, n) == 0 ? 0 : TLS_ERR;
}

static int fail_with(tls_sess *s, int r, const char *what)
{
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TLS_AGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return TLS_CLOSED;
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK) {
        snprintf(s->err, sizeof s->err, "%s: certificate verification failed: %s", what,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        set_err(s->err, what);
    }
    return TLS_ERR;
}

int tls_sess_handshake(tls_sess *s)
{
    if (SSL_is_init_finished(s->ssl))
        return TLS_DONE;
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        return TLS_DONE;
    int rc = fail_with(s, r, "TLS handshake failed");
    if (rc != TLS_AGAIN && s->owner)
        cache_drop(s->owner, s->host); /* do not offer it again */
    return rc == TLS_CLOSED ? TLS_ERR : rc;
}

int tls_sess_resumed(tls_sess *s)
{
    return SSL_session_reused(s->ssl) ? 1 : 0;
}

long tls_sess_read(tls_sess *s, void *p, size_t n)
{
    int r = SSL_read(s->ssl, p, (int)(n > 1 << 30 ? 1 << 30 : n));
    if (r > 0)
        return r;
    return fail_with(s, r, "TLS read failed");
}

/* TLS 1.3 adds 5 header bytes, a content type byte and a 16-byte tag to
 * each record of up to 16 KiB (TLS 1.2 with GCM: 29); room for the
 * ciphertext of a write is made once, before OpenSSL appends record by
 * record, so that the queue grows in one step instead of doubling (and
 * copying) several times per write. */
#define TLS_RECORD_OVERHEAD 32

long tls_sess_write(tls_sess *s, const void *p, size_t n)
{
    size_t done = 0, got;
    if (n <= BIO_QUEUE_MAX / 2)
        (void)buf_reserve(&s->out, n + (n / 16384 + 1) * TLS_RECORD_OVERHEAD, &got);
    while (done < n) {
        int r = SSL_write(s->ssl, (const char *)p + done, (int)(n - done > 1 << 30 ? 1 << 30 : n - done));
        if (r <= 0) {
            fail_with(s, r, "TLS write failed");
            return TLS_ERR;
        }
        done += (size_t)r;
    }
    return (long)n;
}

void tls_sess_shutdown(tls_sess *s)
{
    if (SSL_is_init_finished(s->ssl))
        SSL_shutdown(s->ssl);
    ERR_clear_error();
}

void *tls_sess_take_all(tls_sess *s, unsigned char **bytes, size_t *len)
{
    return buf_detach(&s->out, bytes, len);
}

unsigned char *tls_sess_in_reserve(tls_sess *s, size_t want, size_t *got)
{
    return buf_reserve(&s->in, want, got);
}

void tls_sess_in_commit(tls_sess *s, size_t n)
{
    buf_commit(&s->in, n);
}

size_t tls_sess_pending_out(tls_sess *s)
{
    return buf_len(&s->out);
}

size_t tls_sess_take(tls_sess *s, void *p, size_t n)
{
    size_t k = buf_len(&s->out) < n ? buf_len(&s->out) : n;
    if (k) {
        memcpy(p, buf_data(&s->out), k);
        buf_consume(&s->out, k);
    }
    return k;
}

int tls_sess_has_input(tls_sess *s)
{
    return SSL_pending(s->ssl) > 0 || buf_len(&s->in) > 0;
}

const char *tls_sess_alpn(tls_sess *s, size_t *len)
{
    const unsigned char *p = NULL;
    unsigned int l = 0;
    SSL_get0_alpn_selected(s->ssl, &p, &l);
    *len = l;
    return l ? (const char *)p : NULL;
}

const char *tls_sess_error(tls_sess *s)
{
    return s->err[0] ? s->err : "TLS error";
}
