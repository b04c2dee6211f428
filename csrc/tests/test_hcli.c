/* Unit tests for hcli: one request against a small in-process HTTP server
 * on loopback (plain TCP; TLS is conn's and tested there): a
 * Content-Length answer, a chunked one, an oversized one, a server that
 * never answers (deadline) and a refused connection. */
#include "check.h"
#include "conn.h"
#include "hcli.h"
#include "http.h"

static int tests_run;
static uv_loop_t *loop;
static uv_tcp_t srv;
static int srv_port;

static size_t srv_data(conn_t *c, uint8_t *d, size_t n)
{
    http_request req;
    int hl = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (hl == HTTP_INCOMPLETE)
        return 0;
    CHECK(hl > 0);
    const http_header *host = http_find(req.headers, req.nheaders, "Host");
    CHECK(host && host->value_len > 10); /* 127.0.0.1:port */
    uint64_t blen = 0;
    http_request_body(&req, &blen);
    if (n < (size_t)hl + blen)
        return 0;
    if (req.target_len == 4 && memcmp(req.target, "/len", 4) == 0) {
        char a[256];
        int al = snprintf(a, sizeof a, "HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\necho:%.*s",
                          (int)blen + 5, (int)blen, (const char *)d + hl);
        conn_write(c, a, (size_t)al);
        conn_close(c, 1);
    } else if (req.target_len == 8 && memcmp(req.target, "/chunked", 8) == 0) {
        const char *a =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        conn_write(c, a, strlen(a));
        conn_close(c, 1);
    } else if (req.target_len == 4 && memcmp(req.target, "/big", 4) == 0) {
        static char big[200000];
        memset(big, 'x', sizeof big);
        const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
        conn_write2(c, a, strlen(a), big, sizeof big);
        conn_close(c, 1);
    } /* "/silent": never answers */
    return n;
}

static const conn_cbs srv_cbs = {.on_data = srv_data};

static void on_conn(uv_stream_t *s, int status)
{
    CHECK_EQ(status, 0);
    conn_accept(s, NULL, &srv_cbs, NULL, &conn_default_opts);
}

typedef struct result {
    int status, called;
    char body[256], err[256];
} result;

static void done(void *ud, int status, const char *body, size_t len, const char *err)
{
    result *r = ud;
    r->called++;
    r->status = status;
    snprintf(r->body, sizeof r->body, "%.*s", (int)len, body);
    snprintf(r->err, sizeof r->err, "%s", err);
}

static result call(const char *path, const char *body, const hcli_opts *o)
{
    result r = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    const char *hdrs[] = {"Content-Type: text/plain", NULL};
    CHECK(hcli_request(loop, url, NULL, "POST", hdrs, body, body ? strlen(body) : 0, o, done, &r) != NULL);
    while (!r.called)
        uv_run(loop, UV_RUN_ONCE);
    for (int i = 0; i < 5; i++)
        uv_run(loop, UV_RUN_NOWAIT); /* let the closes finish (ASan checks the frees) */
    CHECK_EQ(r.called, 1);
    return r;
}

static void setup(void)
{
    loop = uv_default_loop();
    char err[128];
    CHECK_EQ(conn_listen(loop, &srv, "127.0.0.1", 0, on_conn, err), 0);
    srv_port = conn_bound_port(&srv);
}

static void answers(void)
{
    result r = call("/len", "hello", NULL);
    CHECK_EQ(r.status, 201);
    CHECK_STR(r.body, "echo:hello");
    r = call("/chunked", NULL, NULL);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "abcde");
}

static void failures(void)
{
    hcli_opts small = {.max_response = 1000, .timeout_ms = 5000};
    result r = call("/big", NULL, &small);
    CHECK(r.status < 0);
    CHECK(strstr(r.err, "larger") != NULL);
    hcli_opts quick = {.timeout_ms = 300};
    r = call("/silent", NULL, &quick);
    CHECK(r.status < 0);
    CHECK(strstr(r.err, "in time") != NULL);
    /* Nothing listens on port 1. */
    result r2 = {0};
    CHECK(hcli_request(loop, "http://127.0.0.1:1/x", NULL, "GET", NULL, NULL, 0, NULL, done, &r2) != NULL);
    while (!r2.called)
        uv_run(loop, UV_RUN_ONCE);
    CHECK(r2.status < 0 && strstr(r2.err, "connection failed") != NULL);
    CHECK(hcli_request(loop, "ftp://x/", NULL, "GET", NULL, NULL, 0, NULL, done, &r2) == NULL);
}

int main(void)
{
    TEST(setup);
    TEST(answers);
    TEST(failures);
    uv_close((uv_handle_t *)&srv, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    TEST_MAIN_END();
}
