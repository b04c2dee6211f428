/* handshake_bench: instructions per TLS handshake, full and resumed, for
 * callgrind (bench/handshake).
 *
 * K client sessions handshake in turn with one server context over
 * memory (tls.c's own queues, no sockets), each passing one byte both
 * ways so that TLS 1.3 tickets reach the client. With "resume" the
 * client context is kept, so from the second connection on it offers the
 * ticket it was given (tls.c's client session cache); with "full" every
 * connection gets a fresh client context and so a full handshake; "ctx"
 * only creates and frees the client contexts, so that full minus ctx is
 * the full handshake alone.
 *
 *   handshake_bench full|resume|ctx K */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cert.h"
#include "tls.h"

static void pump(tls_sess *a, tls_sess *b)
{
    static unsigned char buf[65536];
    for (int i = 0; i < 50; i++) {
        size_t n1 = tls_sess_take(a, buf, sizeof buf);
        if (n1 && tls_sess_feed(b, buf, n1) != 0)
            exit(1);
        tls_sess_handshake(b);
        size_t n2 = tls_sess_take(b, buf, sizeof buf);
        if (n2 && tls_sess_feed(a, buf, n2) != 0)
            exit(1);
        tls_sess_handshake(a);
        if (!n1 && !n2)
            return;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "full") && strcmp(argv[1], "resume") && strcmp(argv[1], "ctx"))) {
        fprintf(stderr, "usage: handshake_bench full|resume|ctx K\n");
        return 2;
    }
    int resume = strcmp(argv[1], "resume") == 0, only_ctx = strcmp(argv[1], "ctx") == 0, k = atoi(argv[2]);
    char err[CERT_ERRLEN], terr[TLS_ERRLEN];
    EVP_PKEY *cak, *key;
    X509 *ca, *crt;
    if (cert_make_ca("bench CA", 1, &cak, &ca, err) < 0 ||
        cert_make_leaf(cak, ca, "localhost", "DNS:localhost", 1, 1, &key, &crt, err) < 0)
        return 1;
    char *cp = cert_pem(crt), *kp = cert_key_pem(key);
    tls_ctx *sc = tls_server_ctx_mem(cp, kp, NULL, terr);
    char capath[] = "/tmp/ck-hs-ca-XXXXXX";
    int fd = mkstemp(capath);
    if (!sc || fd < 0 || cert_write_pem(capath, ca, NULL, err) < 0)
        return 1;
    close(fd);
    tls_ctx *cc = NULL;
    int resumed = 0;
    for (int i = 0; i < k; i++) {
        if (!cc || !resume) {
            tls_ctx_free(cc);
            if (!(cc = tls_client_ctx(capath, NULL, NULL, terr)))
                return 1;
        }
        if (only_ctx)
            continue;
        tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "localhost");
        tls_sess_handshake(c);
        pump(c, s);
        char b;
        if (tls_sess_handshake(c) != TLS_DONE || tls_sess_write(c, "q", 1) != 1)
            return 1;
        pump(c, s);
        if (tls_sess_read(s, &b, 1) != 1 || tls_sess_write(s, "a", 1) != 1)
            return 1;
        pump(c, s);
        if (tls_sess_read(c, &b, 1) != 1)
            return 1;
        (void)tls_sess_read(c, &b, 1); /* tickets after the byte */
        resumed += tls_sess_resumed(c);
        tls_sess_shutdown(c);
        tls_sess_free(s);
        tls_sess_free(c);
    }
    unlink(capath);
    tls_ctx_free(cc);
    tls_ctx_free(sc);
    free(cp);
    free(kp);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(crt);
    printf("handshake_bench: %d connections, %d resumed\n", k, resumed);
    return 0;
}
