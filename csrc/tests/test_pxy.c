/* Unit tests for pxy: the skip list (names, domains, IPs, CIDRs), which
 * proxy a destination gets, the environment in both cases, checked
 * settings, and that a proxy's password never survives display or
 * scrubbing. */
#include <stdlib.h>

#include "check.h"
#include "pxy.h"

static int tests_run;

static int skip(const char *list, const char *host)
{
    return pxy_skip_match(list, strlen(list), host);
}

static void skip_list(void)
{
    CHECK(skip("*", "anything.example"));
    CHECK(skip("example.com", "example.com"));
    CHECK(skip("example.com", "api.EXAMPLE.com"));
    CHECK(skip(".example.com", "api.example.com"));
    CHECK(skip("*.example.com", "a.b.example.com"));
    CHECK(skip(".example.com", "example.com"));
    CHECK(!skip("example.com", "badexample.com"));
    CHECK(!skip("example.com", "example.com.evil"));
    CHECK(skip("a.test, kubernetes.default.svc ,10.0.0.0/8", "kubernetes.default.svc"));
    CHECK(skip("10.0.0.0/8", "10.250.3.4"));
    CHECK(!skip("10.0.0.0/8", "11.0.0.1"));
    CHECK(skip("192.168.1.0/25", "192.168.1.127"));
    CHECK(!skip("192.168.1.0/25", "192.168.1.128"));
    CHECK(skip("127.0.0.1", "127.0.0.1"));
    CHECK(!skip("127.0.0.1", "127.0.0.2"));
    CHECK(skip("::1", "[::1]"));
    CHECK(skip("fd00::/8", "fd12:3456::1"));
    CHECK(!skip("fd00::/8", "fe80::1"));
    CHECK(!skip("10.0.0.0/8", "ten.example")); /* a CIDR never matches a name */
    CHECK(!skip("10.0.0.0/33", "10.0.0.1"));   /* nonsense prefix: no match */
    CHECK(skip("hub.test:443", "hub.test"));   /* a port after an entry is ignored */
    CHECK(skip("example.com", "example.com."));
    CHECK(!skip("", "example.com"));
    CHECK(!skip(",,  ,", "example.com"));
}

static void choosing(void)
{
    pxy_cfg c;
    char err[PXY_ERRLEN];
    memset(&c, 0, sizeof c);
    CHECK_EQ(pxy_set_https(&c, "http://proxy.corp:3128", err), 0);
    CHECK_EQ(pxy_set_http(&c, "proxy.corp:8080", err), 0); /* bare host:port: http:// */
    CHECK_STR(c.http, "http://proxy.corp:8080");
    CHECK_EQ(pxy_add_skip(&c, "10.0.0.0/8", err), 0);
    CHECK_EQ(pxy_add_skip(&c, "apiserver.local", err), 0);
    CHECK_STR(pxy_for(&c, 1, "hub.example"), "http://proxy.corp:3128");
    CHECK_STR(pxy_for(&c, 0, "hub.example"), "http://proxy.corp:8080");
    CHECK(pxy_for(&c, 1, "10.1.2.3") == NULL);
    CHECK(pxy_for(&c, 1, "apiserver.local") == NULL);
    CHECK_EQ(pxy_set_https(&c, "socks5://p:1080", err), -1);
    CHECK(strstr(err, "socks5://p:1080") != NULL);
    CHECK_EQ(pxy_set_https(&c, "http://user:hunter2@", err), -1);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK_STR(c.https, "http://proxy.corp:3128"); /* a refused setting changes nothing */
    CHECK_EQ(pxy_set_https(&c, "", err), 0);
    CHECK(pxy_for(&c, 1, "hub.example") == NULL);
}

static void environment(void)
{
    pxy_cfg c;
    unsetenv("https_proxy");
    unsetenv("http_proxy");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    unsetenv("no_proxy");
    setenv("HTTPS_PROXY", "http://upper:3128", 1);
    setenv("HTTP_PROXY", "http://plain:80", 1);
    setenv("NO_PROXY", "internal.test", 1);
    pxy_from_env(&c);
    CHECK_STR(c.https, "http://upper:3128");
    CHECK_STR(c.http, "http://plain:80");
    CHECK_STR(c.skip, "internal.test");
    setenv("https_proxy", "http://lower:3128", 1); /* lower case first, as curl */
    setenv("no_proxy", "lower.test", 1);
    pxy_from_env(&c);
    CHECK_STR(c.https, "http://lower:3128");
    CHECK_STR(c.skip, "lower.test");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    setenv("ALL_PROXY", "http://all:1", 1);
    pxy_from_env(&c);
    CHECK_STR(c.https, "http://all:1");
    unsetenv("ALL_PROXY");
    unsetenv("HTTP_PROXY");
    unsetenv("NO_PROXY");
    unsetenv("no_proxy");
    pxy_from_env(&c);
    CHECK_STR(c.https, "");
    CHECK_STR(c.http, "");
}

static void secrets(void)
{
    char out[256];
    pxy_display("http://alice:p%40ss@proxy.corp:3128/", out, sizeof out);
    CHECK_STR(out, "http://proxy.corp:3128");
    pxy_display("https://tok@p:1", out, sizeof out);
    CHECK_STR(out, "https://p:1");
    pxy_display("garbage-with-secret", out, sizeof out);
    CHECK(strstr(out, "secret") == NULL);
    char msg[256] = "failed: user alice pw p%40ss or p@ss, p@ss again";
    pxy_scrub("http://alice:p%40ss@proxy.corp:3128", msg);
    CHECK(strstr(msg, "p%40ss") == NULL);
    CHECK(strstr(msg, "p@ss") == NULL);
    CHECK(strstr(msg, "***") != NULL);
    char m2[64] = "ab xx ab";
    pxy_scrub("http://u:ab@h:1", m2);
    CHECK_STR(m2, "** xx **");
    char m3[64] = "star * star";
    pxy_scrub("http://u:*@h:1", m3); /* a secret made of the mask itself ends */
    CHECK_STR(m3, "star * star");
    /* Regressions found by fuzz_pxy: a '#' or '?' inside the password,
     * a "://" that is not the scheme's, a "%00" in the password. */
    pxy_display("http://alice:s3cr#t@proxy:1", out, sizeof out);
    CHECK_STR(out, "http://proxy:1");
    pxy_display("http:s3cret:x@p://alice:pw@host:1", out, sizeof out);
    CHECK(strstr(out, "s3cret") == NULL);
    char m5[64] = "x ab%00cd y ab";
    pxy_scrub("http://u:ab%00cd@h:1", m5);
    CHECK(strstr(m5, "ab%00cd") == NULL);
    char m4[64] = "no creds here";
    pxy_scrub("http://h:1", m4);
    CHECK_STR(m4, "no creds here");
}

int main(void)
{
    TEST(skip_list);
    TEST(choosing);
    TEST(environment);
    TEST(secrets);
    TEST_MAIN_END();
}
