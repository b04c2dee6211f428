/* Unit tests for url (target splitting, query lookup, hosts, URLs). */
#include "check.h"
#include "url.h"

static int tests_run;

static void split_and_query(void)
{
    const char *t = "/$hc/a/b?sb-hc-action=listen&sb-hc-id=x%20y&flag&empty=";
    url_slice path, query, v;
    url_split_target(t, strlen(t), &path, &query);
    CHECK_MEM(path.p, path.n, "/$hc/a/b");
    CHECK(url_query_get(query, "sb-hc-action", &v));
    CHECK_MEM(v.p, v.n, "listen");
    CHECK(url_query_get(query, "sb-hc-id", &v));
    CHECK_MEM(v.p, v.n, "x%20y");
    CHECK(url_query_get(query, "flag", &v));
    CHECK_EQ(v.n, 0);
    CHECK(url_query_get(query, "empty", &v));
    CHECK_EQ(v.n, 0);
    CHECK(!url_query_get(query, "sb-hc", &v)); /* no prefix matches */
    url_split_target("/x", 2, &path, &query);
    CHECK_EQ(query.n, 0);
}

static void hosts(void)
{
    char h[64];
    CHECK_EQ(url_host("Example.COM:8443", 16, h, sizeof h), 11);
    CHECK_STR(h, "example.com");
    CHECK_EQ(url_host("[::1]:443", 9, h, sizeof h), 5);
    CHECK_STR(h, "[::1]");
    CHECK_EQ(url_host("[::1", 4, h, sizeof h), -1);
    CHECK_EQ(url_host(":80", 3, h, sizeof h), -1);
}

static void urls(void)
{
    url_parts u;
    const char *a = "wss://relay.example:9443/$hc/x?q=1";
    CHECK_EQ(url_parse(a, strlen(a), &u), 0);
    CHECK_MEM(u.scheme.p, u.scheme.n, "wss");
    CHECK_MEM(u.host.p, u.host.n, "relay.example");
    CHECK_EQ(u.port, 9443);
    CHECK_MEM(u.path_query.p, u.path_query.n, "/$hc/x?q=1");
    const char *b = "https://[::1]/p";
    CHECK_EQ(url_parse(b, strlen(b), &u), 0);
    CHECK_MEM(u.host.p, u.host.n, "[::1]");
    CHECK_EQ(u.port, 443);
    CHECK_EQ(url_parse("wss://h:99999/", 14, &u), -1);
    CHECK_EQ(url_parse("noscheme", 8, &u), -1);
    CHECK_EQ(url_parse("wss://h:x/", 10, &u), -1);
}

int main(void)
{
    TEST(split_and_query);
    TEST(hosts);
    TEST(urls);
    TEST_MAIN_END();
}
