/* limits.h - every protocol limit tern enforces, named, with where it comes from.
 * Config options may lower or raise the "default" ones; the RFC minimums stay. */
#ifndef TERN_LIMITS_H
#define TERN_LIMITS_H

/* RFC 5321 4.5.3.1.4: command line incl. CRLF is at most 512 octets. */
#define TERN_CMD_LINE_MAX 512
/* RFC 5321 4.5.3.1.6: text line incl. CRLF is at most 1000 octets. */
#define TERN_TEXT_LINE_MAX 1000
/* RFC 5321 4.5.3.1.5: reply line incl. CRLF is at most 512 octets. */
#define TERN_REPLY_LINE_MAX 512
/* RFC 5321 4.5.3.1.1: local part at most 64 octets. */
#define TERN_LOCAL_PART_MAX 64
/* RFC 5321 4.5.3.1.2: domain at most 255 octets. */
#define TERN_DOMAIN_MAX 255
/* RFC 5321 4.5.3.1.3: path incl. angle brackets at most 256 octets. */
#define TERN_PATH_MAX 256
/* RFC 5321 4.5.3.1.8: accept at least 100 recipients; our default. */
#define TERN_RCPTS_MIN 100
#define TERN_RCPTS_DEFAULT 1000
/* Message size default: 35 MiB (as Gmail/Postfix-ish deployments). */
#define TERN_MSG_SIZE_DEFAULT (35u * 1024u * 1024u)
/* RFC 5321 4.5.3.2.7: server timeout waiting for a command, at least 5 minutes. */
#define TERN_CMD_TIMEOUT_DEFAULT_S 300
/* Minimum data rate while receiving message content, bytes per second (Postfix
 * smtpd_min_data_rate): each byte received buys 1/rate s of deadline, capped at the
 * command timeout, so a client trickling content is cut off at the command timeout. */
#define TERN_MIN_DATA_RATE 500
/* Longest greet_delay a listener may set (a pre-greeting talker test, as postscreen). */
#define TERN_GREET_DELAY_MAX_S 60
/* Errors in a session before 421 and close (Postfix smtpd_hard_error_limit is 20). */
#define TERN_ERRORS_DEFAULT 20
/* Connections: total and per client IP. */
#define TERN_CONN_MAX_DEFAULT 10000
#define TERN_CONN_PER_IP_DEFAULT 50
/* HELO/EHLO argument: a domain or an address literal. */
#define TERN_HELO_MAX TERN_DOMAIN_MAX
/* Longest single BDAT chunk size we parse (the number, not the data). */
#define TERN_BDAT_SIZE_DIGITS 20
/* RFC 4954 4: an AUTH response line may exceed 512 octets (12288 is suggested for
 * the AUTH command); we take 4096 octets, plenty for PLAIN/LOGIN/SCRAM with 255-octet
 * names and long passwords. Longer: 500 5.5.6. */
#define TERN_SASL_LINE_MAX 4096

#endif
