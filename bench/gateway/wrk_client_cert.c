/*
 * LD_PRELOAD shim that gives wrk (which has no client-certificate option) a TLS client identity.
 *
 * wrk makes one SSL_CTX at start-up with SSL_CTX_new. This library wraps that call: it calls the
 * real SSL_CTX_new (found with dlsym(RTLD_NEXT)), then loads the certificate chain and the key
 * named by the environment variables WRK_CLIENT_CERT and WRK_CLIENT_KEY (PEM files) into the new
 * context. Every connection wrk opens then presents that certificate when the server asks for one.
 * A file that does not load, or a key that does not match, aborts wrk with a message on stderr
 * instead of silently measuring refused handshakes.
 *
 * Built by bench/gateway/run.py at run time:
 *   gcc -shared -fPIC -O2 -o wrk_client_cert.so wrk_client_cert.c -ldl -lssl -lcrypto
 * Used as:
 *   LD_PRELOAD=./wrk_client_cert.so WRK_CLIENT_CERT=client.pem WRK_CLIENT_KEY=client.key wrk ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

typedef SSL_CTX *(*ssl_ctx_new_fn)(const SSL_METHOD *);

static void fail(const char *what, const char *path) {
    fprintf(stderr, "wrk_client_cert: %s %s failed:\n", what, path ? path : "(unset)");
    ERR_print_errors_fp(stderr);
    exit(70);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static ssl_ctx_new_fn real = NULL;
    if (real == NULL) {
        real = (ssl_ctx_new_fn)dlsym(RTLD_NEXT, "SSL_CTX_new");
        if (real == NULL) {
            fprintf(stderr, "wrk_client_cert: dlsym(SSL_CTX_new): %s\n", dlerror());
            exit(70);
        }
    }
    SSL_CTX *ctx = real(method);
    if (ctx == NULL) {
        return NULL;
    }
    const char *cert = getenv("WRK_CLIENT_CERT");
    const char *key = getenv("WRK_CLIENT_KEY");
    if (cert == NULL || key == NULL) {
        fail("WRK_CLIENT_CERT and WRK_CLIENT_KEY must both be set;", NULL);
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fail("SSL_CTX_use_certificate_chain_file", cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fail("SSL_CTX_use_PrivateKey_file", key);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fail("SSL_CTX_check_private_key", key);
    }
    return ctx;
}
