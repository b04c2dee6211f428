/* Unit tests for tls and cert: sessions talk through memory, no sockets. */
#include <openssl/pem.h>

#include "cert.h"
#include "check.h"
#include "tls.h"

static int tests_run;

static EVP_PKEY *ca_key, *srv_key, *cli_key;
static X509 *ca, *srv, *cli;
static char *ca_pem, *srv_pem, *srv_key_pem;
static char dir[] = "/tmp/ck-tls-XXXXXX";
static char ca_file[64], cli_file[64], cli_key_file[64];

static void setup(void)
{
    char err[CERT_ERRLEN];
    CHECK_EQ(cert_make_ca("test CA", 1, &ca_key, &ca, err), 0);
    CHECK_EQ(cert_make_leaf(ca_key, ca, "localhost", "DNS:localhost,IP:127.0.0.1", 1, 1, &srv_key, &srv, err),
             0);
    CHECK_EQ(cert_make_leaf(ca_key, ca, "client", NULL, 0, 1, &cli_key, &cli, err), 0);
    ca_pem = cert_pem(ca);
    srv_pem = cert_pem(srv);
    srv_key_pem = cert_key_pem(srv_key);
    CHECK(ca_pem && srv_pem && srv_key_pem);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    snprintf(cli_file, sizeof cli_file, "%s/cli.pem", dir);
    snprintf(cli_key_file, sizeof cli_key_file, "%s/cli.key", dir);
    CHECK_EQ(cert_write_pem(ca_file, ca, NULL, err), 0);
    CHECK_EQ(cert_write_pem(cli_file, cli, NULL, err), 0);
    CHECK_EQ(cert_write_pem(cli_key_file, NULL, cli_key, err), 0);
}

/* Moves ciphertext both ways until neither side has anything to send. */
static void pump(tls_sess *a, tls_sess *b)
{
    uint8_t buf[65536];
    for (int i = 0; i < 50; i++) {
        size_t n1 = tls_sess_take(a, buf, sizeof buf);
        if (n1)
            CHECK_EQ(tls_sess_feed(b, buf, n1), 0);
        tls_sess_handshake(b);
        size_t n2 = tls_sess_take(b, buf, sizeof buf);
        if (n2)
            CHECK_EQ(tls_sess_feed(a, buf, n2), 0);
        tls_sess_handshake(a);
        if (!n1 && !n2 && !tls_sess_pending_out(a) && !tls_sess_pending_out(b))
            return;
    }
}

static void handshake_and_data(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    CHECK(sc != NULL);
    CHECK_EQ(tls_ctx_set_alpn(sc, "http/1.1"), 0);
    tls_ctx *cc = tls_client_ctx(ca_file, NULL, NULL, err);
    CHECK(cc != NULL);
    CHECK_EQ(tls_ctx_set_alpn(cc, "h2,http/1.1"), 0);
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "127.0.0.1");
    CHECK_EQ(tls_sess_handshake(c), TLS_AGAIN);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_DONE);
    CHECK_EQ(tls_sess_handshake(s), TLS_DONE);
    size_t al;
    const char *alpn = tls_sess_alpn(c, &al);
    CHECK_MEM(alpn, al, "http/1.1");
    CHECK_EQ(tls_sess_write(c, "hello", 5), 5);
    pump(c, s);
    char buf[16];
    CHECK_EQ(tls_sess_read(s, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(tls_sess_read(s, buf, sizeof buf), TLS_AGAIN);
    tls_sess_shutdown(c);
    pump(c, s);
    CHECK_EQ(tls_sess_read(s, buf, sizeof buf), TLS_CLOSED);
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void wrong_name_fails(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    tls_ctx *cc = tls_client_ctx(ca_file, NULL, NULL, err);
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "evil.example");
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_ERR);
    CHECK(strstr(tls_sess_error(c), "verification failed") != NULL);
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void untrusted_ca_fails(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    tls_ctx *cc = tls_client_ctx(NULL, NULL, NULL, err); /* system store: our CA is not there */
    CHECK(cc != NULL);
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "localhost");
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_ERR);
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void client_certificate_required(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, ca_pem, err);
    CHECK(sc != NULL);
    /* Without a client certificate: refused. */
    tls_ctx *anon = tls_client_ctx(ca_file, NULL, NULL, err);
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(anon, 0, "localhost");
    tls_sess_handshake(c);
    pump(c, s);
    char buf[8];
    int server_failed = tls_sess_handshake(s) == TLS_ERR || tls_sess_read(s, buf, sizeof buf) == TLS_ERR;
    CHECK(server_failed);
    tls_sess_free(s);
    tls_sess_free(c);
    /* With one: accepted. */
    tls_ctx *withcert = tls_client_ctx(ca_file, cli_file, cli_key_file, err);
    CHECK(withcert != NULL);
    s = tls_sess_new(sc, 1, NULL);
    c = tls_sess_new(withcert, 0, "localhost");
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_write(c, "x", 1), 1);
    pump(c, s);
    CHECK_EQ(tls_sess_read(s, buf, sizeof buf), 1);
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(anon);
    tls_ctx_free(withcert);
}

/* Handshakes a fresh client session for `host` with a server session of
 * sc, passes one byte each way (TLS 1.3 tickets arrive after the
 * handshake, read by the client's next read) and reports whether the
 * client resumed; the server must agree. */
static int connect_once(tls_ctx *sc, tls_ctx *cc, const char *host)
{
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, host);
    CHECK(s && c);
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_DONE);
    CHECK_EQ(tls_sess_handshake(s), TLS_DONE);
    char buf[8];
    CHECK_EQ(tls_sess_write(c, "q", 1), 1);
    pump(c, s);
    CHECK_EQ(tls_sess_read(s, buf, sizeof buf), 1);
    CHECK_EQ(tls_sess_write(s, "a", 1), 1);
    pump(c, s);
    CHECK_EQ(tls_sess_read(c, buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'a');
    CHECK_EQ(tls_sess_read(c, buf, sizeof buf), TLS_AGAIN);
    int resumed = tls_sess_resumed(c);
    CHECK_EQ(tls_sess_resumed(s), resumed);
    tls_sess_free(s);
    tls_sess_free(c);
    return resumed;
}

static void session_resumption(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    tls_ctx *cc = tls_client_ctx(ca_file, NULL, NULL, err);
    CHECK(sc && cc);
    CHECK_EQ(connect_once(sc, cc, "127.0.0.1"), 0); /* nothing cached yet */
    CHECK_EQ(connect_once(sc, cc, "127.0.0.1"), 1);
    CHECK_EQ(connect_once(sc, cc, "127.0.0.1"), 1);
    /* Sessions are kept per name: another name starts with a full one. */
    CHECK_EQ(connect_once(sc, cc, "localhost"), 0);
    CHECK_EQ(connect_once(sc, cc, "localhost"), 1);
    /* A server that cannot read the ticket (another context, another
     * ticket key, like a restarted relay) answers with a full handshake,
     * which succeeds; its new ticket is used next time. */
    tls_ctx *sc2 = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    CHECK(sc2 != NULL);
    CHECK_EQ(connect_once(sc2, cc, "127.0.0.1"), 0);
    CHECK_EQ(connect_once(sc2, cc, "127.0.0.1"), 1);
    /* A server that verifies client certificates resumes too (OpenSSL
     * refuses that without a session id context on the server). */
    tls_ctx *mtls = tls_server_ctx_mem(srv_pem, srv_key_pem, ca_pem, err);
    tls_ctx *withcert = tls_client_ctx(ca_file, cli_file, cli_key_file, err);
    CHECK(mtls && withcert);
    CHECK_EQ(connect_once(mtls, withcert, "localhost"), 0);
    CHECK_EQ(connect_once(mtls, withcert, "localhost"), 1);
    /* A context never offers another context's sessions. */
    tls_ctx *cc2 = tls_client_ctx(ca_file, NULL, NULL, err);
    CHECK(cc2 != NULL);
    CHECK_EQ(connect_once(sc, cc2, "127.0.0.1"), 0);
    /* A resumed session still checks the name it was verified for: the
     * cache is keyed by it, so a wrong name never gets a session. */
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "wrong.example");
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_ERR);
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(sc2);
    tls_ctx_free(mtls);
    tls_ctx_free(cc);
    tls_ctx_free(cc2);
    tls_ctx_free(withcert);
}

/* The zero-copy calls carry the same stream as feed/take: ciphertext
 * taken whole from one side and written in odd pieces straight into the
 * other side's input queue decrypts to what was sent. */
static void zero_copy_transfer(void)
{
    char err[TLS_ERRLEN];
    tls_ctx *sc = tls_server_ctx_mem(srv_pem, srv_key_pem, NULL, err);
    tls_ctx *cc = tls_client_ctx(ca_file, NULL, NULL, err);
    CHECK(sc && cc);
    tls_sess *s = tls_sess_new(sc, 1, NULL), *c = tls_sess_new(cc, 0, "localhost");
    tls_sess_handshake(c);
    pump(c, s);
    CHECK_EQ(tls_sess_handshake(c), TLS_DONE);
    unsigned char *bytes;
    size_t len;
    CHECK(tls_sess_take_all(c, &bytes, &len) == NULL); /* nothing pending */
    CHECK_EQ(len, 0);
    enum { N = 100000 };
    static unsigned char sent[N], got[N];
    for (size_t i = 0; i < N; i++)
        sent[i] = (unsigned char)(i * 13 + 5);
    CHECK_EQ(tls_sess_write(c, sent, N), N);
    size_t pending = tls_sess_pending_out(c);
    void *block = tls_sess_take_all(c, &bytes, &len);
    CHECK(block != NULL);
    CHECK_EQ(len, pending);
    CHECK(len > N); /* records add headers and tags */
    CHECK_EQ(tls_sess_pending_out(c), 0);
    size_t off = 0, out = 0;
    while (off < len) {
        size_t room;
        unsigned char *p = tls_sess_in_reserve(s, 7001, &room);
        CHECK(p != NULL && room == 7001);
        size_t k = len - off < room ? len - off : room;
        memcpy(p, bytes + off, k);
        tls_sess_in_commit(s, k);
        off += k;
        for (;;) {
            long r = tls_sess_read(s, got + out, N - out);
            if (r == TLS_AGAIN)
                break;
            CHECK(r > 0);
            out += (size_t)r;
        }
    }
    free(block);
    CHECK_EQ(out, N);
    CHECK(memcmp(sent, got, N) == 0);
    /* The output queue works on after handing its storage over. */
    CHECK_EQ(tls_sess_write(c, "z", 1), 1);
    pump(c, s);
    char z;
    CHECK_EQ(tls_sess_read(s, &z, 1), 1);
    CHECK_EQ(z, 'z');
    tls_sess_free(s);
    tls_sess_free(c);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void bad_files(void)
{
    char err[TLS_ERRLEN];
    CHECK(tls_server_ctx("/nonexistent.pem", "/nonexistent.key", NULL, err) == NULL);
    CHECK(strstr(err, "certificate") != NULL);
    CHECK(tls_client_ctx("/nonexistent-ca.pem", NULL, NULL, err) == NULL);
    CHECK(tls_server_ctx_mem("garbage", "garbage", NULL, err) == NULL);
}

int main(void)
{
    TEST(setup);
    TEST(handshake_and_data);
    TEST(wrong_name_fails);
    TEST(untrusted_ca_fails);
    TEST(client_certificate_required);
    TEST(session_resumption);
    TEST(zero_copy_transfer);
    TEST(bad_files);
    free(ca_pem);
    free(srv_pem);
    free(srv_key_pem);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    unlink(ca_file);
    unlink(cli_file);
    unlink(cli_key_file);
    rmdir(dir);
    TEST_MAIN_END();
}
