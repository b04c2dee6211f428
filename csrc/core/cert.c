/* cert: development certificate factory. See cert.h. */
#include "cert.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enc.h"
#include "file.h"

static int fail(char *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char d[160] = "";
    if (e)
        ERR_error_string_n(e, d, sizeof d);
    ERR_clear_error();
    snprintf(err, CERT_ERRLEN, "%s%s%s", what, e ? ": " : "", d);
    return -1;
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex)
        return -1;
    int ok = X509_add_ext(crt, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

/* Common skeleton: random serial, validity from an hour ago (clock skew)
 * to `days` ahead, subject CN. */
static X509 *skeleton(const char *cn, int days, EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    unsigned char sn[16];
    RAND_bytes(sn, sizeof sn);
    sn[0] &= 0x7F;
    BIGNUM *bn = BN_bin2bn(sn, sizeof sn, NULL);
    ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    if (!serial || X509_set_version(x, 2) != 1 || X509_set_serialNumber(x, serial) != 1) {
        ASN1_INTEGER_free(serial);
        X509_free(x);
        return NULL;
    }
    ASN1_INTEGER_free(serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    return x;
}

int cert_make_ca(const char *cn, int days, EVP_PKEY **key, X509 **crt, char err[CERT_ERRLEN])
{
    EVP_PKEY *k = new_key();
    X509 *x = k ? skeleton(cn, days, k) : NULL;
    if (!x)
        goto fail;
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") < 0 || !X509_sign(x, k, EVP_sha256()))
        goto fail;
    *key = k;
    *crt = x;
    return 0;
fail:
    X509_free(x);
    EVP_PKEY_free(k);
    return fail(err, "cannot create CA certificate");
}

int cert_make_leaf(EVP_PKEY *ca_key, X509 *ca, const char *cn, const char *sans, int server, int days,
                   EVP_PKEY **key, X509 **crt, char err[CERT_ERRLEN])
{
    EVP_PKEY *k = new_key();
    X509 *x = k ? skeleton(cn, days, k) : NULL;
    if (!x)
        goto fail;
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    if (add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
        add_ext(x, ca, NID_ext_key_usage, server ? "serverAuth" : "clientAuth") < 0 ||
        add_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (sans && *sans && add_ext(x, ca, NID_subject_alt_name, sans) < 0)
        goto fail;
    if (!X509_sign(x, ca_key, EVP_sha256()))
        goto fail;
    *key = k;
    *crt = x;
    return 0;
fail:
    X509_free(x);
    EVP_PKEY_free(k);
    return fail(err, "cannot create certificate");
}

int cert_write_pem(const char *path, X509 *crt, EVP_PKEY *key, char err[CERT_ERRLEN])
{
    /* PEM into memory first, then one atomic write (file.h). */
    BIO *b = BIO_new(BIO_s_mem());
    int ok = b && (!crt || PEM_write_bio_X509(b, crt)) &&
             (!key || PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
    char *data = NULL;
    long len = ok ? BIO_get_mem_data(b, &data) : -1;
    char ferr[FILE_ERRLEN];
    int rc = len >= 0 ? file_write_atomic(path, data, (size_t)len, 0600, 0, ferr) : -1;
    BIO_free(b);
    if (len < 0)
        return fail(err, "cannot encode PEM");
    if (rc < 0)
        snprintf(err, CERT_ERRLEN, "%s", ferr);
    return rc;
}

static char *bio_to_str(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (out) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    return out;
}

char *cert_pem(X509 *crt)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, crt)) {
        BIO_free(b);
        return NULL;
    }
    return bio_to_str(b);
}

char *cert_key_pem(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(b);
        return NULL;
    }
    return bio_to_str(b);
}

char *cert_pubkey_b64(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return NULL;
    size_t cap = ENC_B64_LEN((size_t)n) + 1;
    char *out = malloc(cap);
    if (out && enc_b64_encode(der, (size_t)n, out, cap) < 0) {
        free(out);
        out = NULL;
    }
    OPENSSL_free(der);
    return out;
}
