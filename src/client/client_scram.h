/* client_scram.h - the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as a pure
 * computation: build client-first, answer server-first with the proof, check the
 * server's signature. No I/O and no base64 framing (the SMTP session does both).
 * User names are escaped (=2C, =3D) but not SASLprep-normalized. */
#ifndef TERN_CLIENT_SCRAM_H
#define TERN_CLIENT_SCRAM_H

#include <stddef.h>

struct client_scram {
	char client_first[600];        /* "n,,n=user,r=nonce" */
	char auth_message[2048];
	unsigned char server_sig[32];  /* expected ServerSignature */
};

/* nonce NULL: a random one. -EINVAL on an unusable user name. */
int client_scram_start(struct client_scram *sc, const char *user, const char *nonce);
/* From the decoded server-first message, write the client-final message. -EPROTO
 * when the server-first message is malformed or does not extend our nonce. */
int client_scram_final(struct client_scram *sc, const char *pass, const char *server_first,
                       char *out, size_t outsz);
/* Check the decoded server-final message "v=...". 0 or -EPROTO. */
int client_scram_verify(const struct client_scram *sc, const char *server_final);

#endif
