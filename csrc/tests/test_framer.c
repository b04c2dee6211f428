/* Unit tests for framer: what of a client's stream may leave, and in what
 * order answers come back. A small driver plays the relay: it feeds the
 * client's bytes, forwards or refuses each head, and records what it sent
 * upstream and downstream. */
#include "check.h"
#include "framer.h"

static int tests_run;

/* The relay under test: upstream and downstream transcripts. */
typedef struct drv {
    framer f;
    char up[8192], down[8192];
    size_t up_len, down_len;
    const char *in; /* client bytes not yet consumed */
    size_t in_len;
    int status;     /* of the last FRAMER_BAD */
    framer_ev last; /* the event that stopped the request pump */
} drv;

static void drv_init(drv *d)
{
    memset(d, 0, sizeof *d);
    framer_init(&d->f);
}

static void put(char *out, size_t *len, const void *p, size_t n)
{
    CHECK(*len + n < 8192);
    memcpy(out + *len, p, n);
    *len += n;
}

/* Runs the request side over what the client sent so far. Heads whose
 * target contains "refuse" are refused (403); others go up as "<H:target>"
 * so the transcript shows which bytes were rewritten heads. */
static void pump_req(drv *d)
{
    for (;;) {
        http_request req;
        size_t n;
        const char *why;
        size_t ml;
        /* each call sees the input right before an unreadable page */
        uint8_t *g = d->in_len ? guarded(d->in, d->in_len, &ml) : NULL;
        int status;
        framer_ev ev = framer_request(&d->f, g, d->in_len, &req, &n, &status, &why);
        d->last = ev;
        if (ev == FRAMER_HEAD) {
            char tag[300];
            int tl = snprintf(tag, sizeof tag, "<H:%.*s>", (int)req.target_len, req.target);
            if (memmem(req.target, req.target_len, "refuse", 6)) {
                CHECK_EQ(framer_refuse(&d->f, "[403]", 5, 0), 0);
            } else {
                CHECK_EQ(framer_forward(&d->f), 0);
                put(d->up, &d->up_len, tag, (size_t)tl);
            }
        } else if (ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            put(d->up, &d->up_len, g, n);
        } else if (ev == FRAMER_BAD) {
            d->status = status;
            char ans[16];
            int al = snprintf(ans, sizeof ans, "[%d!]", d->status);
            CHECK_EQ(framer_refuse(&d->f, ans, (size_t)al, 1), 0);
            n = d->in_len;
        } else if (ev == FRAMER_DONE && d->in_len) {
            n = d->in_len;
        } else if (ev != FRAMER_DISCARD) {
            if (g)
                guarded_free(g, d->in_len, ml);
            return; /* MORE or HOLD */
        }
        if (g)
            guarded_free(g, d->in_len, ml);
        d->in += n;
        d->in_len -= n;
    }
}

static void client(drv *d, const char *s)
{
    CHECK_EQ(d->in_len, 0); /* tests append only after everything was consumed or held */
    d->in = s;
    d->in_len = strlen(s);
    pump_req(d);
}

/* Feeds the server's bytes (all of them must be consumed) and flushes
 * local answers due; returns the last event. */
static framer_ev server(drv *d, const char *s)
{
    size_t len = strlen(s), off = 0;
    framer_ev ev;
    for (;;) {
        http_response res;
        size_t n;
        const char *local;
        ev = framer_response(&d->f, (const uint8_t *)s + off, len - off, &res, &n, &local);
        if (ev == FRAMER_LOCAL) {
            put(d->down, &d->down_len, local, n);
            continue;
        }
        if (ev == FRAMER_HEAD || ev == FRAMER_BODY || ev == FRAMER_PIPE) {
            put(d->down, &d->down_len, s + off, n);
            off += n;
            continue;
        }
        break;
    }
    CHECK(ev != FRAMER_BAD || off <= len);
    if (ev == FRAMER_MORE)
        CHECK_EQ(off, len);
    /* answers may release held requests */
    if (d->in_len)
        pump_req(d);
    return ev;
}

static void up_is(drv *d, const char *want)
{
    d->up[d->up_len] = '\0';
    CHECK_STR(d->up, want);
}

static void down_is(drv *d, const char *want)
{
    d->down[d->down_len] = '\0';
    CHECK_STR(d->down, want);
}

static void pipelined_in_order(void)
{
    drv d;
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\nHost: k\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c "
               "HTTP/1.1\r\n\r\n");
    up_is(&d, "<H:/a><H:/b>xyz<H:/c>");
    CHECK_EQ(framer_inflight(&d.f), 3);
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nA1"), FRAMER_MORE);
    CHECK_EQ(server(&d, "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nB1\r\n0\r\n\r\n"),
             FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), 1);
    CHECK_EQ(server(&d, "HTTP/1.1 204 No Content\r\n\r\n"), FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), 0);
    framer_free(&d.f);
}

static void refusal_waits_for_earlier_answers(void)
{
    drv d;
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\n\r\nPUT /refuse HTTP/1.1\r\nContent-Length: 5\r\n\r\nbody!GET /c "
               "HTTP/1.1\r\n\r\n");
    /* the refused head and its body never go up; /c does */
    up_is(&d, "<H:/a><H:/c>");
    /* nothing is answered before /a's answer is complete */
    CHECK_EQ(server(&d, ""), FRAMER_MORE);
    down_is(&d, "");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nA"), FRAMER_MORE);
    down_is(&d, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nA");
    CHECK_EQ(server(&d, "AAA"), FRAMER_MORE);
    down_is(&d, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nAAAA[403]");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC"), FRAMER_MORE);
    down_is(
        &d,
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nAAAA[403]HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC");
    framer_free(&d.f);
}

static void refused_chunked_body_is_dropped(void)
{
    drv d;
    drv_init(&d);
    client(&d, "POST /refuse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\nGET /ok "
               "HTTP/1.1\r\n\r\n");
    up_is(&d, "<H:/ok>");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), FRAMER_MORE);
    down_is(&d, "[403]HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    framer_free(&d.f);
}

/* The smuggling case: bytes after an upgrade request are held, and come
 * back as requests when the upgrade is refused. */
static void refused_upgrade_returns_to_heads(void)
{
    int statuses[] = {403, 404, 200};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        drv d;
        drv_init(&d);
        client(&d, "GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
                   "GET /api/v1/namespaces/kube-system/secrets HTTP/1.1\r\nImpersonate-User: admin\r\n\r\n"
                   "GET /refuse-me HTTP/1.1\r\n\r\nGET /pods HTTP/1.1\r\nImpers");
        up_is(&d, "<H:/exec>");
        CHECK_EQ(d.last, FRAMER_HOLD);
        char resp[128];
        snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nno", statuses[i]);
        CHECK_EQ(server(&d, resp), FRAMER_MORE);
        /* the held bytes were parsed as heads, one by one */
        up_is(&d, "<H:/exec><H:/api/v1/namespaces/kube-system/secrets>");
        CHECK_EQ(d.last, FRAMER_MORE); /* the partial head waits for the rest */
        CHECK_EQ(d.in_len, strlen("GET /pods HTTP/1.1\r\nImpers"));
        framer_free(&d.f);
    }
}

static void upgrade_101_becomes_a_pipe(void)
{
    drv d;
    drv_init(&d);
    client(&d,
           "GET /a HTTP/1.1\r\n\r\nGET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
           "\x82\x05hello GET /x HTTP/1.1\r\n\r\n");
    up_is(&d, "<H:/a><H:/exec>");
    CHECK_EQ(d.last, FRAMER_HOLD);
    /* the answer to /a does not release anything: /exec's is still due */
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), FRAMER_MORE);
    up_is(&d, "<H:/a><H:/exec>");
    CHECK(!framer_piped(&d.f));
    CHECK_EQ(server(&d, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x01z"),
             FRAMER_MORE);
    CHECK(framer_piped(&d.f));
    /* after the 101 the held bytes are the pipe's first bytes, verbatim */
    up_is(&d, "<H:/a><H:/exec>\x82\x05hello GET /x HTTP/1.1\r\n\r\n");
    client(&d, "more");
    up_is(&d, "<H:/a><H:/exec>\x82\x05hello GET /x HTTP/1.1\r\n\r\nmore");
    framer_free(&d.f);
}

static void interim_answers_and_head(void)
{
    drv d;
    drv_init(&d);
    client(&d,
           "HEAD /h HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    up_is(&d, "<H:/h><H:/p>");
    /* a HEAD answer's Content-Length describes no body */
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"), FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), 1);
    CHECK_EQ(server(&d, "HTTP/1.1 100 Continue\r\n\r\n"), FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), 1);
    client(&d, "ok");
    up_is(&d, "<H:/h><H:/p>ok");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), 0);
    framer_free(&d.f);
}

/* Each of these must be refused with the status given, answered after the
 * valid request ahead of it, and end the stream: nothing after it goes up. */
static void bad_framing_is_refused_and_ends_the_stream(void)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",                  400},
        {"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",                           400},
        {"GET /x HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",                                                 400},
        {"GET /x HTTP/1.1\nHost: k\r\n\r\n",                                                             400},
        {"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",                                                       400},
        {"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",                                       400},
        {"GET https://evil/api HTTP/1.1\r\n\r\n",                                                        400},
        {"CONNECT kubernetes:443 HTTP/1.1\r\n\r\n",                                                      400},
        {"CONNECT /x HTTP/1.1\r\n\r\n",                                                                  400},
        {"GET * HTTP/1.1\r\n\r\n",                                                                       400},
        {"GET /exec HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 4\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",                                 400},
        {"GARBAGE\x01\x02\r\n\r\n",                                                                      400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        drv d;
        drv_init(&d);
        char in[512];
        snprintf(in, sizeof in, "GET /first HTTP/1.1\r\n\r\n%sGET /after HTTP/1.1\r\n\r\n", cases[i].req);
        client(&d, in);
        check_name = cases[i].req;
        up_is(&d, "<H:/first>");
        CHECK_EQ(d.status, cases[i].status);
        CHECK_EQ(d.in_len, 0); /* the rest was dropped */
        client(&d, "GET /later HTTP/1.1\r\n\r\n");
        CHECK_EQ(d.last, FRAMER_DONE);
        up_is(&d, "<H:/first>");
        CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), FRAMER_DONE);
        char want[128];
        snprintf(want, sizeof want, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n[%d!]", cases[i].status);
        down_is(&d, want);
        framer_free(&d.f);
    }
}

static void bad_forwarded_body_ends_at_once(void)
{
    /* A forwarded request's chunked body turns bad: the server holds half
     * a request, so there is no answer to wait for (status 0). A refused
     * request's bad body can still be answered in turn (400). */
    framer f;
    framer_init(&f);
    const char *s = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokZZ";
    http_request req;
    size_t n;
    int st;
    const char *why;
    CHECK_EQ(framer_request(&f, (const uint8_t *)s, strlen(s), &req, &n, &st, &why), FRAMER_HEAD);
    CHECK_EQ(framer_forward(&f), 0);
    CHECK_EQ(framer_request(&f, (const uint8_t *)s + n, strlen(s) - n, &req, &n, &st, &why), FRAMER_BAD);
    CHECK_EQ(st, 0);
    framer_free(&f);
    framer_init(&f);
    CHECK_EQ(framer_request(&f, (const uint8_t *)s, strlen(s), &req, &n, &st, &why), FRAMER_HEAD);
    CHECK_EQ(framer_refuse(&f, "[403]", 5, 0), 0);
    CHECK_EQ(framer_request(&f, (const uint8_t *)s + n, strlen(s) - n, &req, &n, &st, &why), FRAMER_BAD);
    CHECK_EQ(st, 400);
    framer_free(&f);
}

static void oversized_head_is_431(void)
{
    static char big[20000];
    memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
    memset(big + 20, 'a', sizeof big - 21);
    drv d;
    drv_init(&d);
    client(&d, big);
    CHECK_EQ(d.status, 431);
    framer_free(&d.f);
}

static void server_misbehaviour_is_bad(void)
{
    drv d;
    drv_init(&d);
    /* an answer to nothing */
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\n\r\n"), FRAMER_BAD);
    framer_free(&d.f);
    /* 101 to a request that did not ask */
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\n\r\n");
    CHECK_EQ(server(&d, "HTTP/1.1 101 Switching Protocols\r\n\r\n"), FRAMER_BAD);
    framer_free(&d.f);
    /* malformed answer */
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\n\r\n");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), FRAMER_BAD);
    framer_free(&d.f);
}

static void too_many_in_flight_holds(void)
{
    drv d;
    drv_init(&d);
    static char in[FRAMER_MAX_INFLIGHT * 24 + 64];
    size_t o = 0;
    for (int i = 0; i < FRAMER_MAX_INFLIGHT + 2; i++)
        o += (size_t)snprintf(in + o, sizeof in - o, "GET /%02d HTTP/1.1\r\n\r\n", i);
    client(&d, in);
    CHECK_EQ(framer_inflight(&d.f), FRAMER_MAX_INFLIGHT);
    CHECK_EQ(d.last, FRAMER_HOLD);
    CHECK_EQ(d.in_len, 2 * strlen("GET /00 HTTP/1.1\r\n\r\n"));
    CHECK_EQ(server(&d, "HTTP/1.1 204 No Content\r\n\r\n"), FRAMER_MORE);
    CHECK_EQ(framer_inflight(&d.f), FRAMER_MAX_INFLIGHT);
    CHECK_EQ(d.in_len, strlen("GET /00 HTTP/1.1\r\n\r\n"));
    framer_free(&d.f);
}

static void pending_head_is_shown_again(void)
{
    /* An asynchronous decision: the head stays until it is settled. */
    framer f;
    framer_init(&f);
    const char *s = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    http_request req;
    size_t n, n2;
    int st;
    const char *why;
    CHECK_EQ(framer_request(&f, (const uint8_t *)s, strlen(s), &req, &n, &st, &why), FRAMER_HEAD);
    CHECK_EQ(framer_request(&f, (const uint8_t *)s, strlen(s), &req, &n2, &st, &why), FRAMER_HEAD);
    CHECK_EQ(n, n2);
    CHECK_MEM(req.target, req.target_len, "/a");
    CHECK_EQ(framer_forward(&f), 0);
    CHECK_EQ(framer_forward(&f), -1); /* nothing pending any more */
    CHECK_EQ(framer_request(&f, (const uint8_t *)s + n, strlen(s) - n, &req, &n, &st, &why), FRAMER_HEAD);
    CHECK_MEM(req.target, req.target_len, "/b");
    framer_free(&f);
}

static void answer_until_close(void)
{
    drv d;
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\n\r\n");
    CHECK_EQ(server(&d, "HTTP/1.1 200 OK\r\n\r\nstreaming"), FRAMER_MORE);
    CHECK_EQ(server(&d, " on"), FRAMER_MORE);
    down_is(&d, "HTTP/1.1 200 OK\r\n\r\nstreaming on");
    framer_free(&d.f);
}

/* framer_answer: the server's bytes go out in as few writes as the
 * framing allows, and local answers in their turn between them. */
typedef struct rec {
    char out[1024];
    size_t len;
    int writes, fail_at;
} rec;

static int rec_write(void *ud, const void *p, size_t n)
{
    rec *r = ud;
    if (++r->writes == r->fail_at)
        return -1;
    memcpy(r->out + r->len, p, n);
    r->len += n;
    r->out[r->len] = '\0';
    return 0;
}

static void answer_coalesces_and_orders(void)
{
    drv d;
    drv_init(&d);
    client(&d,
           "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /refuse HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"
           "GET /d HTTP/1.1\r\n\r\n");
    const char *srv =
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nCHTTP/1.1 200 OK\r\nContent-";
    rec r = {.fail_at = 0};
    size_t used;
    int progress;
    int rc = framer_answer(&d.f, (const uint8_t *)srv, strlen(srv), rec_write, &r, &used, &progress);
    CHECK_EQ(rc, FRAMER_MORE);
    CHECK(progress);
    /* /a and /b in one write, the refusal, then /c; the cut head stays */
    CHECK_EQ(r.writes, 3);
    CHECK_STR(
        r.out,
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB[403]"
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC");
    CHECK_EQ(used, strlen(srv) - strlen("HTTP/1.1 200 OK\r\nContent-"));
    /* nothing new: no progress */
    rc = framer_answer(&d.f, (const uint8_t *)"", 0, rec_write, &r, &used, &progress);
    CHECK_EQ(rc, FRAMER_MORE);
    CHECK(!progress);
    framer_free(&d.f);
    /* a failed write is reported, and a server answering nothing is bad */
    drv_init(&d);
    client(&d, "GET /a HTTP/1.1\r\n\r\n");
    rec r2 = {.fail_at = 1};
    CHECK_EQ(framer_answer(&d.f, (const uint8_t *)"HTTP/1.1 204 No Content\r\n\r\n", 27, rec_write, &r2,
                           &used, &progress),
             -1);
    rec r3 = {.fail_at = 0};
    CHECK_EQ(framer_answer(&d.f, (const uint8_t *)"HTTP/1.1 204 No Content\r\n\r\n", 27, rec_write, &r3,
                           &used, &progress),
             FRAMER_BAD);
    framer_free(&d.f);
}

int main(void)
{
    TEST(pipelined_in_order);
    TEST(refusal_waits_for_earlier_answers);
    TEST(refused_chunked_body_is_dropped);
    TEST(refused_upgrade_returns_to_heads);
    TEST(upgrade_101_becomes_a_pipe);
    TEST(interim_answers_and_head);
    TEST(bad_framing_is_refused_and_ends_the_stream);
    TEST(bad_forwarded_body_ends_at_once);
    TEST(oversized_head_is_431);
    TEST(server_misbehaviour_is_bad);
    TEST(too_many_in_flight_holds);
    TEST(pending_head_is_shown_again);
    TEST(answer_until_close);
    TEST(answer_coalesces_and_orders);
    TEST_MAIN_END();
}
