/* Unit tests for sas (the hybrid-connections.md worked example is the
 * reference vector). */
#include <time.h>

#include "check.h"
#include "sas.h"

static int tests_run;

#define KEY "SGVsbG9Xb3JsZEtleUZvclRlc3RpbmcxMjM0NTY3OA=="

static void worked_example(void)
{
    char tok[512];
    long n = sas_create("http://contoso.servicebus.windows.net/hyco/", "RootManageSharedAccessKey", KEY,
                        1700000000, tok, sizeof tok);
    CHECK(n > 0);
    CHECK_STR(tok, "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F"
                   "&sig=T%2Fn0u8AJB%2BwvBGD%2FSw4or8iF%2BXZ4GhSyk9n8wLOGb9Q%3D&se=1700000000"
                   "&skn=RootManageSharedAccessKey");
    sas_token t;
    CHECK_EQ(sas_parse(tok, (size_t)n, &t), SAS_OK);
    CHECK_EQ(t.se, 1700000000);
    CHECK_MEM(t.skn, t.skn_len, "RootManageSharedAccessKey");
    CHECK_EQ(sas_check_sig(&t, KEY), SAS_OK);
    CHECK_EQ(sas_check_sig(&t, "SGVsbG9Xb3JsZEtleUZvclRlc3RpbmcxMjM0NTY3OB=="), SAS_ERR_SIGNATURE);
}

static void lower_case_escapes_verify(void)
{
    /* .NET's encoder writes lower-case escapes; the HMAC covers sr as sent. */
    char tok[512];
    long n = sas_create("http://h/x", "k", KEY, 1700000000, tok, sizeof tok);
    CHECK(n > 0);
    sas_token t;
    CHECK_EQ(sas_parse(tok, (size_t)n, &t), SAS_OK);
    char norm[128];
    CHECK(sas_normalize(t.sr, t.sr_len, norm, sizeof norm) > 0);
    CHECK_STR(norm, "h/x");
    CHECK(sas_normalize("http%3a%2f%2fH%3a443%2fx%2f", 27, norm, sizeof norm) > 0);
    CHECK_STR(norm, "h/x");
    CHECK(sas_normalize("sb%3A%2F%2FNS.example%2F", 24, norm, sizeof norm) > 0);
    CHECK_STR(norm, "ns.example");
}

static void parse_errors(void)
{
    sas_token t;
    const char *bad[] = {
        "SharedAccessSignature sr=a&sig=b&se=1",                   /* no skn */
        "SharedAccessSignature sr=a&sig=b&se=x1&skn=k",            /* se not a number */
        "SharedAccessSignature sr=a&sr=b&sig=b&se=1&skn=k",        /* duplicate */
        "SharedAccessSignature sr=&sig=b&se=1&skn=k",              /* empty */
        "SharedAccessSignature sr",                                /* no '=' */
        "SharedAccessSignature sr=a&sig=b&se=1234567890123&skn=k", /* se too long */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(sas_parse(bad[i], strlen(bad[i]), &t), SAS_ERR_MALFORMED);
    const char *ok = "sr=a&sig=b&se=1&skn=k&extra=1";
    CHECK_EQ(sas_parse(ok, strlen(ok), &t), SAS_OK);
}

static void authorize(void)
{
    int64_t now = (int64_t)time(NULL), exp;
    sas_rule ns[] = {
        {"root", KEY, SAS_RIGHT_MANAGE}
    };
    sas_rule ent[] = {
        {"send", "sendsendsendsendsendsend", SAS_RIGHT_SEND}
    };
    char tok[512];
    long n;

    n = sas_create("http://relay.test/", "root", KEY, now + 60, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, ent, 1, ns, 1, "relay.test", "a/b", SAS_RIGHT_LISTEN, now, &exp),
             SAS_OK);
    CHECK_EQ(exp, now + 60);
    /* Scope: entity-level token for another entity; a prefix that is not a
     * path segment; another host. */
    n = sas_create("http://relay.test/hyco", "root", KEY, now + 60, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_OK);
    CHECK_EQ(
        sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco/sub", SAS_RIGHT_SEND, now, NULL),
        SAS_OK);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco2", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_SCOPE);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "other.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_SCOPE);
    /* Rights: a Send token may not listen. */
    n = sas_create("http://relay.test/hyco", "send", "sendsendsendsendsendsend", now + 60, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, ent, 1, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_OK);
    CHECK_EQ(sas_authorize(tok, (size_t)n, ent, 1, ns, 1, "relay.test", "hyco", SAS_RIGHT_LISTEN, now, NULL),
             SAS_ERR_RIGHTS);
    CHECK_EQ(sas_http_status(SAS_ERR_RIGHTS), 403);
    /* Expired, unknown key, forged signature, missing. */
    n = sas_create("http://relay.test/hyco", "root", KEY, now - 1, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_EXPIRED);
    CHECK_EQ(sas_http_status(SAS_ERR_EXPIRED), 401);
    n = sas_create("http://relay.test/hyco", "nobody", KEY, now + 60, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_UNKNOWN_KEY);
    n = sas_create("http://relay.test/hyco", "root", "not-the-key-at-all-sorry", now + 60, tok, sizeof tok);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_SIGNATURE);
    CHECK_EQ(sas_authorize("", 0, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_MISSING);
    /* Changing the expiry breaks the signature. */
    n = sas_create("http://relay.test/hyco", "root", KEY, now + 60, tok, sizeof tok);
    char *se = strstr(tok, "&se=");
    se[5] = se[5] == '9' ? '8' : (char)(se[5] + 1);
    CHECK_EQ(sas_authorize(tok, (size_t)n, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_SEND, now, NULL),
             SAS_ERR_SIGNATURE);
}

int main(void)
{
    TEST(worked_example);
    TEST(lower_case_escapes_verify);
    TEST(parse_errors);
    TEST(authorize);
    TEST_MAIN_END();
}
