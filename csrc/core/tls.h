/* tls: OpenSSL over in-memory queues, independent of any event loop.
 *
 * The caller moves ciphertext: bytes from the network go in with
 * tls_sess_feed(), bytes for the network come out of tls_sess_take().
 * Plaintext goes through tls_sess_read()/tls_sess_write(). Keeping the
 * socket out of OpenSSL lets the same code run under libuv on every
 * platform and in the fuzz and unit tests with no socket at all.
 *
 * Contexts enforce TLS 1.2 or newer. Errors carry a sentence in a
 * caller-supplied char err[TLS_ERRLEN]. */
#ifndef CK_TLS_H
#define CK_TLS_H
#include <stddef.h>

#define TLS_ERRLEN 256

enum { TLS_AGAIN = 0, TLS_DONE = 1, TLS_CLOSED = -2, TLS_ERR = -1 };

typedef struct tls_ctx tls_ctx;
typedef struct tls_sess tls_sess;

/* Server context from PEM files. With client_ca_file, clients must present
 * a certificate that chains to it (mutual TLS). */
tls_ctx *tls_server_ctx(const char *cert_file, const char *key_file, const char *client_ca_file,
                        char err[TLS_ERRLEN]);
/* The same from PEM text in memory (the proxy's per-session certificates
 * never touch the disk). */
tls_ctx *tls_server_ctx_mem(const char *cert_pem, const char *key_pem, const char *client_ca_pem,
                            char err[TLS_ERRLEN]);
/* Client context: verifies the server against ca_file, or the system store
 * when ca_file is NULL. cert/key (optional) are a client certificate. */
tls_ctx *tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                        char err[TLS_ERRLEN]);
/* ALPN: a client offers `protos` ("http/1.1" or "h2,http/1.1"); a server
 * picks the first of its own list that the client offered. */
int tls_ctx_set_alpn(tls_ctx *c, const char *protos);
void tls_ctx_free(tls_ctx *c);

/* A session. For a client, `host` is sent as SNI (unless an IP literal)
 * and checked against the certificate (DNS or IP subjectAltName).
 *
 * Client contexts remember the newest session (TLS 1.3 ticket) per host
 * and offer it on the next connection to that host, so a reconnecting
 * agent or proxy skips the certificate exchange and signatures; a server
 * that refuses it gets a full handshake. Server contexts issue tickets.
 * A context and its sessions belong to one thread (one event loop). */
tls_sess *tls_sess_new(tls_ctx *c, int is_server, const char *host);
void tls_sess_free(tls_sess *s);

int tls_sess_feed(tls_sess *s, const void *p, size_t n);
/* TLS_DONE, TLS_AGAIN (move bytes and call again) or TLS_ERR. */
int tls_sess_handshake(tls_sess *s);
/* Zero-copy variant of tls_sess_feed for a caller that reads the socket
 * straight into the session: room for up to `want` ciphertext bytes (*got
 * may be less, 0 at the ceiling), valid until the next call on s; then
 * tls_sess_in_commit() with the count actually written. */
unsigned char *tls_sess_in_reserve(tls_sess *s, size_t want, size_t *got);
void tls_sess_in_commit(tls_sess *s, size_t n);
/* Bytes read (> 0), TLS_AGAIN, TLS_CLOSED (close_notify) or TLS_ERR. */
long tls_sess_read(tls_sess *s, void *p, size_t n);
/* Encrypts all n bytes (memory BIOs never block); returns n or TLS_ERR. */
long tls_sess_write(tls_sess *s, const void *p, size_t n);
/* Queues a close_notify alert. */
void tls_sess_shutdown(tls_sess *s);
size_t tls_sess_pending_out(tls_sess *s);
/* Moves up to n ciphertext bytes into p; returns the count. */
size_t tls_sess_take(tls_sess *s, void *p, size_t n);
/* Zero-copy variant: hands over all pending ciphertext. Returns a block
 * the caller owns and free()s once the bytes are written (NULL when none
 * are pending); *bytes and *len receive the ciphertext inside it. */
void *tls_sess_take_all(tls_sess *s, unsigned char **bytes, size_t *len);
/* Whether decrypted bytes or unprocessed records wait inside OpenSSL. */
int tls_sess_has_input(tls_sess *s);
/* 1 when the handshake resumed a cached session, else 0. */
int tls_sess_resumed(tls_sess *s);
/* The negotiated ALPN protocol (NULL if none). */
const char *tls_sess_alpn(tls_sess *s, size_t *len);
/* Human sentence for the last failure of this session. */
const char *tls_sess_error(tls_sess *s);

#endif
