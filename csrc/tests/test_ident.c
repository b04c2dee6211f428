/* test_ident: who the API server sees for each kind of Entra caller,
 * under both --username-claim settings and with prefixes. */
#include "ident.h"

#include "check.h"

static int tests_run;

/* Claims as jwt_verify leaves them for each shape of token Entra issues. */
static jwt_claims member_v1(void)
{
    jwt_claims c = {0};
    snprintf(c.oid, sizeof c.oid, "oid-ann");
    snprintf(c.sub, sizeof c.sub, "sub-ann");
    snprintf(c.upn, sizeof c.upn, "ann@contoso.example");
    snprintf(c.appid, sizeof c.appid, "azure-cli");
    c.has_scp = 1;
    return c;
}

static void members_by_upn(void)
{
    ident_opts d = {IDENT_CLAIM_UPN, NULL, NULL}, o = {IDENT_CLAIM_OID, NULL, NULL};
    char out[512];
    jwt_claims c = member_v1();
    CHECK_EQ(ident_kind_of(&c), IDENT_MEMBER);
    CHECK_STR(ident_kind_name(ident_kind_of(&c)), "user");
    CHECK_EQ(ident_user(&c, &d, out, sizeof out), 19);
    CHECK_STR(out, "ann@contoso.example");
    CHECK(ident_user(&c, &o, out, sizeof out) > 0);
    CHECK_STR(out, "oid-ann");
    CHECK_STR(ident_object_id(&c), "oid-ann"); /* what the hub is asked about either way */
    /* v2 with the optional idtyp claim: the same. */
    snprintf(c.idtyp, sizeof c.idtyp, "user");
    CHECK(ident_user(&c, &d, out, sizeof out) > 0);
    CHECK_STR(out, "ann@contoso.example");
}

static void guests_by_object_id(void)
{
    ident_opts d = {IDENT_CLAIM_UPN, NULL, NULL};
    char out[512];
    jwt_claims c = member_v1();
    c.upn[0] = '\0'; /* guests have unique_name live.com#..., no upn */
    snprintf(c.name, sizeof c.name, "live.com#guest@outlook.example");
    CHECK_EQ(ident_kind_of(&c), IDENT_USER_NO_UPN);
    CHECK_STR(ident_kind_name(IDENT_USER_NO_UPN), "guest");
    CHECK(ident_user(&c, &d, out, sizeof out) > 0);
    CHECK_STR(out, "oid-ann");
    /* A user token of the optional-claim kind without scp or upn. */
    c.has_scp = 0;
    snprintf(c.idtyp, sizeof c.idtyp, "user");
    CHECK_EQ(ident_kind_of(&c), IDENT_USER_NO_UPN);
    /* No oid (another OIDC issuer): sub. */
    jwt_claims g = {0};
    snprintf(g.sub, sizeof g.sub, "subject-1");
    CHECK_EQ(ident_kind_of(&g), IDENT_USER_NO_UPN);
    CHECK(ident_user(&g, &d, out, sizeof out) > 0);
    CHECK_STR(out, "subject-1");
}

static void apps_by_object_id(void)
{
    ident_opts d = {IDENT_CLAIM_UPN, NULL, NULL};
    char out[512];
    /* Service principal, v1 client credentials without idtyp: appid,
     * roles, no scp, no upn. */
    jwt_claims sp = {0};
    snprintf(sp.oid, sizeof sp.oid, "oid-sp");
    snprintf(sp.sub, sizeof sp.sub, "oid-sp");
    snprintf(sp.appid, sizeof sp.appid, "app-sp");
    CHECK_EQ(ident_kind_of(&sp), IDENT_APP);
    CHECK_STR(ident_kind_name(IDENT_APP), "app");
    CHECK(ident_user(&sp, &d, out, sizeof out) > 0);
    CHECK_STR(out, "oid-sp");
    /* Managed identity: idtyp app (and xms_mirid, not read). */
    jwt_claims mi = sp;
    snprintf(mi.idtyp, sizeof mi.idtyp, "app");
    CHECK_EQ(ident_kind_of(&mi), IDENT_APP);
    /* idtyp app wins even if some issuer added a upn. */
    snprintf(mi.upn, sizeof mi.upn, "not-a-user@contoso.example");
    CHECK_EQ(ident_kind_of(&mi), IDENT_APP);
    CHECK(ident_user(&mi, &d, out, sizeof out) > 0);
    CHECK_STR(out, "oid-sp");
    /* An app token with scp is a delegated (user) token after all. */
    sp.has_scp = 1;
    CHECK_EQ(ident_kind_of(&sp), IDENT_USER_NO_UPN);
}

static void prefixes(void)
{
    ident_opts p = {IDENT_CLAIM_UPN, "aad:", "aadgroup:"};
    char out[512];
    jwt_claims c = member_v1();
    CHECK(ident_user(&c, &p, out, sizeof out) > 0);
    CHECK_STR(out, "aad:ann@contoso.example");
    p.claim = IDENT_CLAIM_OID;
    CHECK(ident_user(&c, &p, out, sizeof out) > 0);
    CHECK_STR(out, "aad:oid-ann");
    CHECK_EQ(ident_group("g-1", &p, out, sizeof out), 12);
    CHECK_STR(out, "aadgroup:g-1");
    ident_opts none = {IDENT_CLAIM_UPN, "", NULL};
    CHECK(ident_group("g-1", &none, out, sizeof out) > 0);
    CHECK_STR(out, "g-1");
}

static void refusals(void)
{
    ident_opts d = {IDENT_CLAIM_UPN, NULL, NULL};
    char out[32];
    jwt_claims c = member_v1();
    snprintf(c.upn, sizeof c.upn, "ann@contoso.example\r\nImpersonate-Group: system:masters");
    CHECK_EQ(ident_user(&c, &d, out, sizeof out), -1);
    snprintf(c.upn, sizeof c.upn, "a-name-longer-than-the-buffer@contoso.example");
    CHECK_EQ(ident_user(&c, &d, out, sizeof out), -1); /* never cut */
    CHECK_EQ(ident_group("g\n", &d, out, sizeof out), -1);
    CHECK_EQ(ident_group("", &d, out, sizeof out), -1);
    CHECK_EQ(ident_parse_claim("upn"), IDENT_CLAIM_UPN);
    CHECK_EQ(ident_parse_claim("oid"), IDENT_CLAIM_OID);
    CHECK_EQ(ident_parse_claim("email"), -1);
}

int main(void)
{
    TEST(members_by_upn);
    TEST(guests_by_object_id);
    TEST(apps_by_object_id);
    TEST(prefixes);
    TEST(refusals);
    TEST_MAIN_END();
}
