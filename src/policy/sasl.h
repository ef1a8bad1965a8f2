/* sasl.h - server side of the SASL mechanisms ternd offers for SMTP AUTH: PLAIN
 * (RFC 4616), LOGIN (draft-murchison-sasl-login) and SCRAM-SHA-256 (RFC 5802,
 * RFC 7677), plus the password checks against the users file.
 *
 * Pure computation: no I/O, no base64 framing (the engine does it), no logging.
 * PLAIN and LOGIN end in SASL_R_CHECK: the caller verifies sasl_user()/sasl_pass()
 * with sasl_verify_password(), which is slow on purpose (yescrypt, PBKDF2) and should
 * run off the event loop. SCRAM needs only the stored secret (sasl_lookup_fn) and a
 * few HMACs, so it runs to the end in sasl_step.
 *
 * Secrets (the part after "user:" in the users file):
 *   - a crypt(3) string ($y$ yescrypt, $2b$ bcrypt, $6$ sha512-crypt): PLAIN, LOGIN;
 *   - "{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY" (base64 fields, the format of
 *     Dovecot's SCRAM-SHA-256 scheme; `tern passwd --scram` prints one): SCRAM-SHA-256,
 *     PLAIN and LOGIN. */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_MECHS "PLAIN LOGIN SCRAM-SHA-256"
#define SASL_USER_MAX 256
#define SASL_PASS_MAX 1024
#define SASL_SCRAM_PREFIX "{SCRAM-SHA-256}"
#define SASL_SCRAM_ITER_DEFAULT 4096

enum sasl_result {
	SASL_R_CONTINUE,  /* send out[0..outlen) as a challenge */
	SASL_R_CHECK,     /* credentials complete: verify sasl_user/sasl_pass */
	SASL_R_OK,        /* authenticated as sasl_user */
	SASL_R_FAIL,      /* wrong credentials */
	SASL_R_MALFORMED, /* the client broke the mechanism's syntax */
};

struct sasl;

/* The stored secret for a user name as given by the client, or NULL. */
typedef const char *(*sasl_lookup_fn)(void *arg, const char *user);

/* mech: one of SASL_MECHS (upper case). NULL for an unknown one or no memory. */
struct sasl *sasl_new(const char *mech);
void sasl_free(struct sasl *sa);
/* One step with the decoded client response (has_in false: AUTH had no initial
 * response). */
enum sasl_result sasl_step(struct sasl *sa, const unsigned char *in, size_t n, bool has_in,
                           sasl_lookup_fn lookup, void *arg, unsigned char *out, size_t outsz,
                           size_t *outlen);
const char *sasl_user(const struct sasl *sa);
const char *sasl_pass(const struct sasl *sa);
/* Verify a password against a secret: 0 match, -EACCES mismatch, -EINVAL unusable
 * secret (NULL, "*", "!..." or malformed). Constant-time compare; slow on purpose. */
int sasl_verify_password(const char *secret, const char *pass);
/* "{SCRAM-SHA-256}..." for pass with a random salt. -EINVAL/-ENOSPC. */
int sasl_scram_secret(const char *pass, unsigned iter, char *out, size_t outsz);

#endif
