/* Unit tests for http (head parser, body framing, chunked decoder). */
#include "check.h"
#include "http.h"

static int tests_run;

/* Parses `s` placed right before an unreadable page. */
static int parse_req_guarded(const char *s, http_request *req)
{
    size_t ml, n = strlen(s);
    uint8_t *g = guarded(s, n, &ml);
    int rc = http_parse_request((const char *)g, n, 0, NULL, req);
    guarded_free(g, n, ml);
    return rc;
}

static void request_ok(void)
{
    const char *s = "GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: k\r\nX-Empty:\r\nAccept:  a/b \t\r\n\r\nBODY";
    http_request r;
    int rc = http_parse_request(s, strlen(s), 0, NULL, &r);
    CHECK_EQ(rc, (int)(strlen(s) - 4));
    CHECK_MEM(r.method, r.method_len, "GET");
    CHECK_MEM(r.target, r.target_len, "/api/v1/pods?watch=1");
    CHECK_EQ(r.minor_version, 1);
    CHECK_EQ(r.nheaders, 3);
    CHECK_MEM(r.headers[2].value, r.headers[2].value_len, "a/b");
    CHECK_EQ(r.headers[1].value_len, 0);
    const http_header *h = http_find(r.headers, r.nheaders, "host");
    CHECK(h != NULL);
    CHECK_MEM(h->value, h->value_len, "k");
}

static void request_incremental(void)
{
    const char *s = "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
    size_t n = strlen(s), last = 0;
    http_request r;
    for (size_t i = 1; i < n; i++) {
        size_t ml;
        uint8_t *g = guarded(s, i, &ml);
        CHECK_EQ(http_parse_request((const char *)g, i, last, NULL, &r), HTTP_INCOMPLETE);
        guarded_free(g, i, ml);
        last = i;
    }
    CHECK_EQ(http_parse_request(s, n, last, NULL, &r), (int)n);
}

static void request_bad(void)
{
    http_request r;
    const char *bad[] = {
        "GET / HTTP/1.1\nHost: a\n\n\r\n\r\n", /* bare LF */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",  /* space before colon */
        "GET / HTTP/1.1\r\n folded\r\n\r\n",   /* obs-fold */
        "GET / HTTP/2.0\r\n\r\n",              /* not HTTP/1.x */
        "GET  / HTTP/1.1\r\n\r\n",             /* empty target */
        "G(T / HTTP/1.1\r\n\r\n",              /* bad method char */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",   /* header without colon */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",  /* control char in value */
        "GET /a\x7f HTTP/1.1\r\n\r\n",         /* DEL in target */
        "\r\n\r\n",                            /* empty request line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse_req_guarded(bad[i], &r);
        if (rc != HTTP_BAD)
            fprintf(stderr, "case %zu\n", i);
        CHECK_EQ(rc, HTTP_BAD);
    }
}

static void request_limits(void)
{
    http_request r;
    http_limits lim = {64, 32, 2};
    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_EQ(http_parse_request(three, strlen(three), 0, &lim, &r), HTTP_TOO_LARGE);
    const char *longline = "GET / HTTP/1.1\r\nA: 0123456789012345678901234567890123\r\n\r\n";
    CHECK_EQ(http_parse_request(longline, strlen(longline), 0, &lim, &r), HTTP_TOO_LARGE);
    char big[200];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    CHECK_EQ(http_parse_request(big, sizeof big, 0, &lim, &r), HTTP_TOO_LARGE); /* no end in sight */
}

static void response_and_bodies(void)
{
    http_response res;
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK_EQ(http_parse_response(s, strlen(s), 0, NULL, &res), (int)strlen(s));
    CHECK_EQ(res.status, 200);
    CHECK_MEM(res.reason, res.reason_len, "OK");
    uint64_t len;
    CHECK_EQ(http_response_body(&res, "GET", 3, &len), HTTP_BODY_CHUNKED);
    CHECK_EQ(http_response_body(&res, "HEAD", 4, &len), HTTP_BODY_NONE);
    const char *s2 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    CHECK(http_parse_response(s2, strlen(s2), 0, NULL, &res) > 0);
    CHECK_EQ(http_response_body(&res, "GET", 3, &len), HTTP_BODY_NONE);
    const char *s3 = "HTTP/1.1 404\r\n\r\n"; /* empty reason */
    CHECK(http_parse_response(s3, strlen(s3), 0, NULL, &res) > 0);
    CHECK_EQ(res.reason_len, 0);
    CHECK_EQ(http_response_body(&res, "GET", 3, &len), HTTP_BODY_UNTIL_CLOSE);
    CHECK_EQ(http_parse_response("HTTP/1.1 2x0 OK\r\n\r\n", 19, 0, NULL, &res), HTTP_BAD);

    http_request r;
    const char *te_cl = "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(http_parse_request(te_cl, strlen(te_cl), 0, NULL, &r) > 0);
    CHECK_EQ(http_request_body(&r, &len), HTTP_BAD); /* smuggling vector */
    const char *cl2 = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    CHECK(http_parse_request(cl2, strlen(cl2), 0, NULL, &r) > 0);
    CHECK_EQ(http_request_body(&r, &len), HTTP_BAD);
    const char *gz = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    CHECK(http_parse_request(gz, strlen(gz), 0, NULL, &r) > 0);
    CHECK_EQ(http_request_body(&r, &len), HTTP_BAD);
    const char *cl = "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
    CHECK(http_parse_request(cl, strlen(cl), 0, NULL, &r) > 0);
    CHECK_EQ(http_request_body(&r, &len), HTTP_BODY_LENGTH);
    CHECK_EQ(len, 12);
    const char *neg = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
    CHECK(http_parse_request(neg, strlen(neg), 0, NULL, &r) > 0);
    CHECK_EQ(http_request_body(&r, &len), HTTP_BAD);
}

static void tokens(void)
{
    const char *v = "keep-alive, Upgrade ,x";
    CHECK(http_has_token(v, strlen(v), "upgrade"));
    CHECK(http_has_token(v, strlen(v), "x"));
    CHECK(!http_has_token(v, strlen(v), "keep"));
}

/* Decodes `s` feeding it in pieces of `step` bytes, collecting the data. */
static long chunked_collect(const char *s, size_t step, char *out, size_t cap, int *done)
{
    http_chunked c;
    http_chunked_init(&c);
    size_t n = strlen(s), off = 0, o = 0;
    char pending[256];
    size_t plen = 0;
    while (off < n || plen) {
        size_t take = n - off < step ? n - off : step;
        memcpy(pending + plen, s + off, take);
        plen += take;
        off += take;
        size_t used = 0;
        for (;;) {
            const char *d;
            size_t dl;
            long r = http_chunked_step(&c, pending + used, plen - used, &d, &dl);
            if (r < 0)
                return r;
            if (dl) {
                if (o + dl > cap)
                    return -100;
                memcpy(out + o, d, dl);
                o += dl;
            }
            used += (size_t)r;
            if (r == 0 || c.done)
                break;
        }
        memmove(pending, pending + used, plen - used);
        plen -= used;
        if (c.done || take == 0)
            break;
    }
    out[o] = '\0';
    *done = c.done;
    return (long)o;
}

static void chunked(void)
{
    const char *s = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
    char out[64];
    for (size_t step = 1; step <= strlen(s); step++) {
        int done = 0;
        long n = chunked_collect(s, step, out, sizeof out - 1, &done);
        CHECK_EQ(n, 16);
        CHECK_STR(out, "hello 0123456789");
        CHECK(done);
    }
    int done;
    CHECK_EQ(chunked_collect("5\r\nhelloX\r\n", 64, out, 63, &done), HTTP_BAD); /* missing CRLF */
    CHECK_EQ(chunked_collect("g\r\n", 64, out, 63, &done), HTTP_BAD);           /* not hex */
    CHECK_EQ(chunked_collect("ffffffffffffffff\r\n", 64, out, 63, &done), HTTP_TOO_LARGE);
    CHECK_EQ(chunked_collect("5\nhello\r\n", 64, out, 63, &done), HTTP_BAD); /* bare LF */
    CHECK_EQ(chunked_collect("0\r\n\r\n", 64, out, 63, &done), 0);
    CHECK(done);
}

int main(void)
{
    TEST(request_ok);
    TEST(request_incremental);
    TEST(request_bad);
    TEST(request_limits);
    TEST(response_and_bodies);
    TEST(tokens);
    TEST(chunked);
    TEST_MAIN_END();
}
