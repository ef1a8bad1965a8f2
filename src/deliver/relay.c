/* relay.c - outbound delivery of remote recipients.
 *
 * Threads, not the event loop: each worker takes a due queue id, resolves the
 * destination (transport map, smarthost, or MX via c-ares: sorted by preference,
 * shuffled among equals, A/AAAA fallback, null MX bounces), connects with a
 * timeout, and drives the smtp_client engine over a blocking socket (optionally
 * STARTTLS, certificate not verified). Workers with blocking I/O are simpler than
 * non-blocking sockets and c-ares on the loop, keep a slow remote away from the
 * SMTP sessions, and cost one thread per concurrent outbound connection, bounded
 * by relay_threads. docs/ARCHITECTURE.md says more.
 *
 * Queue life: results are applied per recipient: 2xx -> done; 5xx -> failed,
 * bounced; 4xx/network -> attempts+1, next try after the backoff, last error kept
 * (all in <qid>.state); past give_up -> failed. A bounce is made so that a crash
 * at any point neither loses nor duplicates it (docs/QUEUE.md "Bounces").
 * It does not deliver local recipients (local.c does) and does not parse SMTP. */
#include "deliver/relay.h"
#include "deliver/bounce.h"
#include "queue/spool.h"
#include "smtp/smtp_client.h"
#include "util/buf.h"
#include "util/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RELAY_MX_MAX 16
#define RELAY_ADDR_MAX 8
#define RELAY_FULL_MAX (1024u * 1024u) /* return the whole message in a DSN up to this */
#define RELAY_DEST_MAX 256
#define RELAY_IDLE_MAX 32     /* open connections kept for the next message */
#define RELAY_IDLE_MS 5000u   /* how long one waits for the next message */
#define RELAY_PARK_MAX 256    /* messages waiting for a busy destination */
#define RELAY_PARK_MS 10000u  /* a parked message is looked at again after this anyway */
#define RELAY_BUSY_MS 1000u   /* ... one that could not be parked, after this */

struct relay_item {
	char qid[SPOOL_QID_MAX];
	uint64_t due_ms;
	uint64_t seq;
	bool force;
};

struct relay_dest {
	char domain[256];
	unsigned n;
};

/* A message that found every connection to a destination busy: it is due again
 * as soon as one is given back (relay_dest_give), not by polling. */
struct relay_park {
	char qid[SPOOL_QID_MAX];
	uint64_t hash; /* of the destination domain, relay_domain_hash() */
};

/* ---- one SMTP connection ---- */

struct relay_conn {
	struct relay *rl;
	int fd;
	SSL *ssl;
	unsigned timeout_s;
};

/* An open connection to a destination domain, its engine READY between messages.
 * Kept idle in struct relay (it keeps its destination slot) for the next message
 * to the same domain, up to relay_max_messages_per_connection. */
struct relay_link {
	struct relay_conn c;
	struct smtp_client *cl; /* NULL: no link */
	char domain[256];
	char hostdesc[400];
	unsigned nmsgs;         /* messages sent on this connection */
	bool tempfail;          /* the last message had a 4xx: do not keep it */
	uint64_t idle_since_ms;
};

struct relay {
	struct spool *sp;
	struct relay_opts o;
	struct config_transport *transports;
	char **local_domains;      /* lowercase copies */
	size_t nlocal;
	bool accept_any;
	bool joined;
	char hostname[256];
	SSL_CTX *ssl;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct relay_item *heap;
	size_t n, cap;
	uint64_t seq;
	bool stopping;
	atomic_bool halt;          /* stopping, readable without the mutex */
	unsigned nthreads;
	pthread_t *threads;
	char (*active)[SPOOL_QID_MAX];
	struct relay_dest dests[RELAY_DEST_MAX]; /* connections per destination domain */
	struct relay_link idle[RELAY_IDLE_MAX];  /* cl == NULL: free */
	size_t nidle;
	struct relay_park park[RELAY_PARK_MAX];
	size_t npark;
};

/* ---- scheduling (a min-heap on due time, as in local.c) ---- */

static uint64_t relay_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool relay_less(const struct relay_item *a, const struct relay_item *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static int relay_push(struct relay *rl, const char *qid, uint64_t due_ms, bool force)
{
	if (rl->n == rl->cap) {
		size_t ncap = rl->cap ? rl->cap * 2 : 64;
		struct relay_item *nh = realloc(rl->heap, ncap * sizeof *nh);
		if (nh == NULL)
			return -ENOMEM;
		rl->heap = nh;
		rl->cap = ncap;
	}
	size_t i = rl->n++;
	snprintf(rl->heap[i].qid, SPOOL_QID_MAX, "%s", qid);
	rl->heap[i].due_ms = due_ms;
	rl->heap[i].seq = rl->seq++;
	rl->heap[i].force = force;
	while (i > 0 && relay_less(&rl->heap[i], &rl->heap[(i - 1) / 2])) {
		struct relay_item t = rl->heap[i];
		rl->heap[i] = rl->heap[(i - 1) / 2];
		rl->heap[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
	pthread_cond_signal(&rl->cv);
	return 0;
}

static struct relay_item relay_pop(struct relay *rl)
{
	struct relay_item top = rl->heap[0];
	rl->heap[0] = rl->heap[--rl->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < rl->n && relay_less(&rl->heap[l], &rl->heap[m]))
			m = l;
		if (r < rl->n && relay_less(&rl->heap[r], &rl->heap[m]))
			m = r;
		if (m == i)
			break;
		struct relay_item t = rl->heap[i];
		rl->heap[i] = rl->heap[m];
		rl->heap[m] = t;
		i = m;
	}
	return top;
}

static void relay_schedule(struct relay *rl, const char *qid, uint64_t delay_ms, bool force)
{
	if (rl == NULL || qid == NULL || strlen(qid) >= SPOOL_QID_MAX)
		return;
	pthread_mutex_lock(&rl->mu);
	if (!rl->stopping && relay_push(rl, qid, relay_now_ms() + delay_ms, force) < 0)
		log_error("qid=%s event=relay-enqueue-failed error=\"out of memory\" "
		          "note=\"stays queued on disk until restart\"",
		          qid);
	pthread_mutex_unlock(&rl->mu);
}

void relay_enqueue(struct relay *rl, const char *qid)
{
	relay_schedule(rl, qid, 0, false);
}

static void relay_flush_cb(void *arg, const char *qid)
{
	relay_schedule(arg, qid, 0, true);
}

void relay_flush(struct relay *rl, const char *qid)
{
	if (rl == NULL)
		return;
	if (qid != NULL)
		relay_schedule(rl, qid, 0, true);
	else
		spool_list(rl->sp, relay_flush_cb, rl);
}

static void relay_link_close(struct relay_link *l);

/* FNV-1a of the lowercased domain; never 0 (0 = no destination). */
static uint64_t relay_domain_hash(const char *d)
{
	uint64_t h = 1469598103934665603ull;
	for (; *d; d++) {
		unsigned char c = (unsigned char)*d;
		h ^= (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
		h *= 1099511628211ull;
	}
	return h | 1u;
}

/* With rl->mu held: could a message to the destination get a connection now? */
static bool relay_dest_open_locked(struct relay *rl, uint64_t h)
{
	for (size_t i = 0; i < RELAY_IDLE_MAX && rl->nidle > 0; i++)
		if (rl->idle[i].cl != NULL && relay_domain_hash(rl->idle[i].domain) == h)
			return true;
	for (size_t i = 0; i < RELAY_DEST_MAX; i++)
		if (rl->dests[i].n > 0 && relay_domain_hash(rl->dests[i].domain) == h)
			return rl->dests[i].n < rl->o.cfg.max_per_destination;
	return true;
}

/* With rl->mu held: park qid until a connection to the destination is given back.
 * Returns false when the table is full (the caller polls instead). */
static bool relay_park_locked(struct relay *rl, const char *qid, uint64_t h)
{
	for (size_t i = 0; i < rl->npark; i++)
		if (strcmp(rl->park[i].qid, qid) == 0) {
			rl->park[i].hash = h;
			return true;
		}
	if (rl->npark == RELAY_PARK_MAX)
		return false;
	snprintf(rl->park[rl->npark].qid, SPOOL_QID_MAX, "%s", qid);
	rl->park[rl->npark++].hash = h;
	return true;
}

/* With rl->mu held: qid is being looked at now; it waits for nothing any more. */
static void relay_unpark_qid_locked(struct relay *rl, const char *qid)
{
	for (size_t i = 0; i < rl->npark; i++)
		if (strcmp(rl->park[i].qid, qid) == 0) {
			rl->park[i] = rl->park[--rl->npark];
			return;
		}
}

/* With rl->mu held: a connection to domain was given back; the first message parked
 * on it is due now (one per connection: the others stay parked). */
static void relay_unpark_locked(struct relay *rl, const char *domain)
{
	if (rl->npark == 0)
		return;
	uint64_t h = relay_domain_hash(domain);
	for (size_t i = 0; i < rl->npark; i++)
		if (rl->park[i].hash == h) {
			char qid[SPOOL_QID_MAX];
			memcpy(qid, rl->park[i].qid, sizeof qid);
			rl->park[i] = rl->park[--rl->npark];
			if (!rl->stopping && relay_push(rl, qid, relay_now_ms(), false) < 0)
				log_error("qid=%s event=retry-lost error=\"out of memory\"", qid);
			return;
		}
}

/* Per-destination connection slots. An idle connection to the domain is handed
 * over with its slot (reuse->cl set); else a new slot if the limit allows. */
static bool relay_dest_take(struct relay *rl, const char *domain, struct relay_link *reuse)
{
	bool ok = false;
	struct relay_dest *free_slot = NULL;
	pthread_mutex_lock(&rl->mu);
	for (size_t i = 0; i < RELAY_IDLE_MAX && rl->nidle > 0; i++)
		if (rl->idle[i].cl != NULL && strcasecmp(rl->idle[i].domain, domain) == 0) {
			*reuse = rl->idle[i];
			rl->idle[i].cl = NULL;
			rl->nidle--;
			ok = true;
			goto out;
		}
	for (size_t i = 0; i < RELAY_DEST_MAX; i++) {
		struct relay_dest *d = &rl->dests[i];
		if (d->n > 0 && strcasecmp(d->domain, domain) == 0) {
			if (d->n < rl->o.cfg.max_per_destination) {
				d->n++;
				ok = true;
			}
			goto out;
		}
		if (d->n == 0 && free_slot == NULL)
			free_slot = d;
	}
	if (free_slot != NULL) {
		snprintf(free_slot->domain, sizeof free_slot->domain, "%s", domain);
		free_slot->n = 1;
		ok = true;
	}
out:
	pthread_mutex_unlock(&rl->mu);
	return ok;
}

static void relay_dest_dec_locked(struct relay *rl, const char *domain)
{
	for (size_t i = 0; i < RELAY_DEST_MAX; i++)
		if (rl->dests[i].n > 0 && strcasecmp(rl->dests[i].domain, domain) == 0) {
			rl->dests[i].n--;
			break;
		}
}

/* Give the slot back; a connection still usable is kept idle with it instead. */
static void relay_dest_give(struct relay *rl, const char *domain, struct relay_link *l)
{
	bool kept = false;
	if (l->cl != NULL && smtp_client_state(l->cl) == SMTP_CL_READY && !l->tempfail &&
	    l->nmsgs < rl->o.cfg.max_msgs_per_conn && !atomic_load(&rl->halt)) {
		pthread_mutex_lock(&rl->mu);
		for (size_t i = 0; i < RELAY_IDLE_MAX && !kept; i++)
			if (rl->idle[i].cl == NULL) {
				snprintf(l->domain, sizeof l->domain, "%s", domain);
				l->idle_since_ms = relay_now_ms();
				rl->idle[i] = *l;
				rl->nidle++;
				kept = true;
			}
		if (kept)
			relay_unpark_locked(rl, domain);
		pthread_mutex_unlock(&rl->mu);
	}
	if (kept) {
		l->cl = NULL;
		return;
	}
	relay_link_close(l);
	pthread_mutex_lock(&rl->mu);
	relay_dest_dec_locked(rl, domain);
	relay_unpark_locked(rl, domain);
	pthread_mutex_unlock(&rl->mu);
}

/* With rl->mu held: close idle connections past RELAY_IDLE_MS (all of them if
 * all); the mutex is dropped while talking to the servers. Returns the time in
 * ms until the next one expires, or UINT64_MAX when none is idle. */
static uint64_t relay_idle_expire_locked(struct relay *rl, bool all)
{
	struct relay_link gone[RELAY_IDLE_MAX];
	size_t ng = 0;
	uint64_t now = relay_now_ms(), next = UINT64_MAX;
	for (size_t i = 0; i < RELAY_IDLE_MAX && rl->nidle > 0; i++) {
		struct relay_link *l = &rl->idle[i];
		if (l->cl == NULL)
			continue;
		if (all || now >= l->idle_since_ms + RELAY_IDLE_MS) {
			gone[ng++] = *l;
			l->cl = NULL;
			rl->nidle--;
		} else if (l->idle_since_ms + RELAY_IDLE_MS - now < next) {
			next = l->idle_since_ms + RELAY_IDLE_MS - now;
		}
	}
	if (ng == 0)
		return next;
	pthread_mutex_unlock(&rl->mu);
	for (size_t i = 0; i < ng; i++) {
		log_info("event=connection-closed host=%s messages=%u reason=idle", gone[i].hostdesc,
		         gone[i].nmsgs);
		relay_link_close(&gone[i]);
	}
	pthread_mutex_lock(&rl->mu);
	for (size_t i = 0; i < ng; i++)
		relay_dest_dec_locked(rl, gone[i].domain);
	return next;
}

/* ---- DNS (c-ares, driven synchronously on this worker thread) ---- */

struct relay_mx {
	char host[CONFIG_RELAY_HOST_MAX];
	int pref;
	unsigned rnd;
};

struct relay_dns {
	int status;
	unsigned char *abuf;
	int alen;
};

static void relay_dns_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct relay_dns *d = arg;
	d->status = status;
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		d->abuf = malloc((size_t)alen);
		if (d->abuf != NULL) {
			memcpy(d->abuf, abuf, (size_t)alen);
			d->alen = alen;
		} else {
			d->status = ARES_ENOMEM;
		}
	}
}

/* Run one query to completion. Returns the ares status; d->abuf to free. */
static int relay_dns_query(struct relay *rl, const char *name, int type, struct relay_dns *d)
{
	ares_channel ch;
	struct ares_options opt;
	memset(&opt, 0, sizeof opt);
	memset(d, 0, sizeof *d);
	d->status = ARES_ETIMEOUT;
	opt.timeout = 2000;
	opt.tries = 2;
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	int st = ares_init_options(&ch, &opt, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (st != ARES_SUCCESS)
		return st;
	if (rl->o.cfg.resolver[0] != '\0' &&
	    (st = ares_set_servers_ports_csv(ch, rl->o.cfg.resolver)) != ARES_SUCCESS) {
		ares_destroy(ch);
		return st;
	}
	ares_query(ch, name, ns_c_in, type, relay_dns_cb, d);
	for (;;) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM), np = 0;
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			/* the c-ares macros shift a signed 1 into the sign bit (UBSan) */
			if ((unsigned)bits & (1u << i))
				ev |= POLLIN;
			if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev) {
				pfd[np].fd = socks[i];
				pfd[np].events = ev;
				pfd[np].revents = 0;
				np++;
			}
		}
		if (np == 0)
			break;
		struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
		int ms = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
		int pr = poll(pfd, (nfds_t)np, ms);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (int i = 0; i < np; i++)
			ares_process_fd(ch, (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd
			                                                                   : ARES_SOCKET_BAD,
			                (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD);
	}
	ares_destroy(ch);
	return d->status;
}

static int relay_mx_cmp(const void *a, const void *b)
{
	const struct relay_mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->rnd < y->rnd ? -1 : x->rnd > y->rnd;
}

enum relay_res { RELAY_OK, RELAY_TEMP, RELAY_PERM };

/* MX hosts for domain, sorted. Returns count, or sets err and a result. */
static int relay_mx_lookup(struct relay *rl, const char *domain, struct relay_mx *mx, int max,
                           enum relay_res *res, char *err, size_t errsz)
{
	struct relay_dns d;
	int st = relay_dns_query(rl, domain, ns_t_mx, &d), n = 0;
	*res = RELAY_OK;
	if (st == ARES_ENODATA) {
		snprintf(mx[0].host, sizeof mx[0].host, "%s", domain); /* RFC 5321 5.1 */
		mx[0].pref = 0;
		return 1;
	}
	if (st == ARES_ENOTFOUND) {
		*res = RELAY_PERM;
		snprintf(err, errsz, "550 5.1.2 domain %s not found (DNS NXDOMAIN)", domain);
		return 0;
	}
	if (st != ARES_SUCCESS) {
		*res = RELAY_TEMP;
		snprintf(err, errsz, "451 4.4.3 MX lookup for %s failed: %s", domain, ares_strerror(st));
		return 0;
	}
	struct ares_mx_reply *head = NULL;
	st = ares_parse_mx_reply(d.abuf, d.alen, &head);
	free(d.abuf);
	if (st == ARES_ENODATA) {
		snprintf(mx[0].host, sizeof mx[0].host, "%s", domain);
		mx[0].pref = 0;
		return 1;
	}
	if (st != ARES_SUCCESS) {
		*res = RELAY_TEMP;
		snprintf(err, errsz, "451 4.4.3 bad MX reply for %s: %s", domain, ares_strerror(st));
		return 0;
	}
	bool nullmx = false;
	for (struct ares_mx_reply *m = head; m != NULL && n < max; m = m->next) {
		if (m->host == NULL || m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			nullmx = true;
			continue;
		}
		snprintf(mx[n].host, sizeof mx[n].host, "%s", m->host);
		mx[n].pref = m->priority;
		if (getrandom(&mx[n].rnd, sizeof mx[n].rnd, 0) != sizeof mx[n].rnd)
			mx[n].rnd = (unsigned)rand();
		n++;
	}
	ares_free_data(head);
	if (nullmx && n == 0) {
		*res = RELAY_PERM;
		snprintf(err, errsz, "556 5.1.10 domain %s does not accept mail (null MX, RFC 7505)",
		         domain);
		return 0;
	}
	qsort(mx, (size_t)n, sizeof *mx, relay_mx_cmp);
	return n;
}

/* Addresses of host: a literal, else AAAA then A. */
static int relay_addrs(struct relay *rl, const char *host, unsigned port,
                       struct sockaddr_storage *out, int max)
{
	int n = 0;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[0];
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 1;
	}
	int types[2] = {ns_t_aaaa, ns_t_a};
	for (int t = 0; t < 2 && n < max; t++) {
		struct relay_dns d;
		if (relay_dns_query(rl, host, types[t], &d) != ARES_SUCCESS) {
			free(d.abuf);
			continue;
		}
		if (types[t] == ns_t_a) {
			struct ares_addrttl a[RELAY_ADDR_MAX];
			int na = RELAY_ADDR_MAX;
			if (ares_parse_a_reply(d.abuf, d.alen, NULL, a, &na) == ARES_SUCCESS)
				for (int i = 0; i < na && n < max; i++, n++) {
					struct sockaddr_in *x = (struct sockaddr_in *)&out[n];
					memset(&out[n], 0, sizeof out[n]);
					x->sin_family = AF_INET;
					x->sin_port = htons((uint16_t)port);
					x->sin_addr = a[i].ipaddr;
				}
		} else {
			struct ares_addr6ttl a[RELAY_ADDR_MAX];
			int na = RELAY_ADDR_MAX;
			if (ares_parse_aaaa_reply(d.abuf, d.alen, NULL, a, &na) == ARES_SUCCESS)
				for (int i = 0; i < na && n < max; i++, n++) {
					struct sockaddr_in6 *x = (struct sockaddr_in6 *)&out[n];
					memset(&out[n], 0, sizeof out[n]);
					x->sin6_family = AF_INET6;
					x->sin6_port = htons((uint16_t)port);
					memcpy(&x->sin6_addr, &a[i].ip6addr, sizeof x->sin6_addr);
				}
		}
		free(d.abuf);
	}
	return n;
}

static int relay_connect(const struct sockaddr_storage *sa, unsigned timeout_s)
{
	socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                          : sizeof(struct sockaddr_in);
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, len) < 0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			close(fd);
			return e;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int pr = poll(&p, 1, (int)timeout_s * 1000);
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (pr <= 0) {
			close(fd);
			return pr == 0 ? -ETIMEDOUT : -errno;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr != 0) {
			close(fd);
			return -soerr;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	struct timeval tv = {.tv_sec = (time_t)timeout_s};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	/* Each flight (the pipelined commands, the body and its final dot) is handed
	 * over whole; what is left of it must leave at once, not wait for the ACK of
	 * the part before (Nagle), which the server delays because it answers only
	 * after the dot: 40 ms per message on loopback, bench/RESULTS.md run AC. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Wait for input in 1 s slices, so that shutdown never waits for a slow server. */
static int relay_wait_readable(struct relay_conn *c)
{
	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		return 0;
	for (unsigned waited = 0; waited < c->timeout_s; waited++) {
		if (atomic_load(&c->rl->halt))
			return -ECANCELED;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int r = poll(&p, 1, 1000);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	return -ETIMEDOUT;
}

static ssize_t relay_read(struct relay_conn *c, char *p, size_t n)
{
	if (relay_wait_readable(c) < 0)
		return -1;
	if (c->ssl != NULL) {
		int r = SSL_read(c->ssl, p, (int)(n > INT_MAX ? INT_MAX : n));
		return r > 0 ? r : (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
	}
	for (;;) {
		ssize_t r = read(c->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

static int relay_write(struct relay_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, p, (int)(n > INT_MAX ? INT_MAX : n));
			w = r > 0 ? r : -1;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send the message body (dot-stuffed) from the queue file. The last part goes out
 * in one write with the final dot (a message up to 64 KiB: a single write). */
static int relay_send_body(struct relay_conn *c, int fd, uint64_t off, uint64_t len)
{
	struct smtp_client_stuffer st;
	struct buf out;
	char chunk[65536];
	int r = 0;
	smtp_client_stuff_init(&st);
	buf_init(&out, 0);
	while (len > 0 && r == 0) {
		size_t want = len < sizeof chunk ? (size_t)len : sizeof chunk;
		ssize_t n = pread(fd, chunk, want, (off_t)off);
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (uint64_t)n;
		len -= (uint64_t)n;
		buf_reset(&out);
		r = smtp_client_stuff(&st, chunk, (size_t)n, &out);
		if (r == 0 && len > 0) /* not the last part: send it now */
			r = relay_write(c, out.ptr, out.len);
	}
	if (r == 0) {
		/* out holds the last part (nothing for an empty body): add the dot */
		r = smtp_client_stuff_end(&st, &out);
		r = r ? r : relay_write(c, out.ptr, out.len);
	}
	buf_free(&out);
	return r;
}

/* Run one transaction for m on the connection (new: from the greeting; reused:
 * from READY). Returns 0 when the transaction ran (results in cl; the engine is
 * READY again unless the connection broke), or -EAGAIN when the connection failed
 * before MAIL (try the next host); err set. Does not QUIT (relay_link_close does). */
static int relay_conn_tls(struct relay_conn *c, const char *host);

static int relay_session(struct relay *rl, struct relay_conn *c, struct smtp_client *cl,
                         const char *host, const struct smtp_client_msg *m, int body_fd,
                         uint64_t body_off, uint64_t body_len, char *err, size_t errsz)
{
	char in[4096];
	bool sent = false;
	for (;;) {
		size_t olen;
		const char *o = smtp_client_output(cl, &olen);
		if (olen > 0) {
			if (relay_write(c, o, olen) < 0) {
				smtp_client_eof(cl, "write to server failed");
				continue;
			}
			smtp_client_output_done(cl, olen);
		}
		enum smtp_client_state st = smtp_client_state(cl);
		if (st == SMTP_CL_DONE || st == SMTP_CL_FAILED)
			break;
		if (st == SMTP_CL_TLS) {
			smtp_client_tls_done(cl, relay_conn_tls(c, host) == 0);
			continue;
		}
		if (st == SMTP_CL_READY) {
			if (sent)
				break; /* message finished, connection still usable */
			sent = true;
			if (smtp_client_send_msg(cl, m) < 0) {
				snprintf(err, errsz, "451 4.3.0 out of memory");
				return -EAGAIN;
			}
			continue;
		}
		if (st == SMTP_CL_BODY) {
			if (relay_send_body(c, body_fd, body_off, body_len) < 0) {
				smtp_client_eof(cl, "sending the message failed");
				continue;
			}
			smtp_client_body_done(cl);
			continue;
		}
		ssize_t n = relay_read(c, in, sizeof in);
		if (n <= 0) {
			smtp_client_eof(cl, n == 0 ? "connection closed by server"
			                           : "timeout or error reading from server");
			continue;
		}
		smtp_client_feed(cl, in, (size_t)n);
	}
	if (!smtp_client_msg_finished(cl)) {
		const struct smtp_client_reply *e = smtp_client_error(cl);
		snprintf(err, errsz, "%s", e->text[0] ? e->text : "connection failed");
		return -EAGAIN;
	}
	return 0;
}

/* A TLS session on c for host (the MX or route name): with relay_tls_verify the
 * certificate must name host (or its IP, for a literal). 0 or -EPROTO. */
static int relay_conn_tls(struct relay_conn *c, const char *host)
{
	struct in6_addr a6;
	if (c->rl->ssl == NULL || (c->ssl = SSL_new(c->rl->ssl)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1)
		return -EPROTO;
	bool literal = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(c->ssl, host);
	if (c->rl->o.cfg.tls_verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
		if ((literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
		             : X509_VERIFY_PARAM_set1_host(vp, host, 0)) != 1)
			return -EPROTO;
	}
	if (SSL_connect(c->ssl) != 1) {
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK)
			log_warn("event=tls-verify-failed host=%.255s error=\"%s\"", host,
			         X509_verify_cert_error_string(v));
		return -EPROTO;
	}
	return 0;
}

/* QUIT (waiting a few seconds at most for the 221) and close. Safe on an empty link. */
static void relay_link_close(struct relay_link *l)
{
	if (l->cl != NULL && smtp_client_state(l->cl) == SMTP_CL_READY && l->c.fd >= 0) {
		char in[512];
		size_t olen;
		smtp_client_quit(l->cl);
		const char *o = smtp_client_output(l->cl, &olen);
		l->c.timeout_s = l->c.timeout_s < 5 ? l->c.timeout_s : 5;
		if (relay_write(&l->c, o, olen) == 0) {
			smtp_client_output_done(l->cl, olen);
			while (smtp_client_state(l->cl) == SMTP_CL_QUIT) {
				ssize_t n = relay_read(&l->c, in, sizeof in);
				if (n <= 0)
					break;
				smtp_client_feed(l->cl, in, (size_t)n);
			}
		}
	}
	if (l->c.ssl != NULL) {
		SSL_shutdown(l->c.ssl);
		SSL_free(l->c.ssl);
		l->c.ssl = NULL;
	}
	if (l->c.fd >= 0)
		close(l->c.fd);
	l->c.fd = -1;
	smtp_client_free(l->cl);
	l->cl = NULL;
}

/* A reused connection that broke before any reply to this message (the server
 * closed it while idle): the message is tried again on a new connection. */
static bool relay_link_stale(const struct smtp_client *cl, size_t n)
{
	if (smtp_client_state(cl) != SMTP_CL_FAILED)
		return false;
	for (size_t k = 0; k < n; k++)
		if (smtp_client_rcpt_result(cl, k)->code != 0)
			return false;
	return true;
}

/* ---- one message ---- */

struct relay_job {
	struct relay *rl;
	struct spool_envelope env;
	int fd;
	uint64_t body_off, body_len;
	bool changed;
	bool *unmarked; /* relayed in this job, not yet recorded in <qid>.done */
};

/* Record the recipients relayed in this job (durably: each a line in <qid>.done).
 * Needed unless the message leaves the queue now: a crash or a retry must not send
 * them again. */
static void relay_record_done(struct relay_job *j)
{
	for (size_t i = 0; j->unmarked != NULL && i < j->env.nrcpts; i++) {
		if (!j->unmarked[i])
			continue;
		j->unmarked[i] = false;
		if (spool_mark_done(j->rl->sp, j->env.qid, i) < 0)
			log_warn("qid=%s event=mark-done-failed rcpt=%zu note=\"may be delivered twice\"",
			         j->env.qid, i);
	}
}

/* Every recipient done: the message leaves the queue at the end of this job. */
static bool relay_all_done(const struct relay_job *j)
{
	for (size_t i = 0; i < j->env.nrcpts; i++)
		if (!j->env.rcpts[i].done)
			return false;
	return true;
}

static void relay_set_error(struct spool_rcpt *rc, const char *text)
{
	free(rc->last_error);
	rc->last_error = strdup(text);
}

static uint64_t relay_backoff_s(const struct relay *rl, unsigned attempts)
{
	uint64_t d = rl->o.cfg.retry_first_s;
	for (unsigned i = 1; i < attempts && d < rl->o.cfg.retry_max_s; i++)
		d *= 2;
	return d > rl->o.cfg.retry_max_s ? rl->o.cfg.retry_max_s : d;
}

/* Apply one result to recipient i. */
static void relay_result(struct relay_job *j, size_t i, int code, const char *text,
                         const char *host)
{
	struct relay *rl = j->rl;
	struct spool_rcpt *rc = &j->env.rcpts[i];
	char e1[300], e2[450], a[600];
	time_t now = time(NULL);
	spool_rcpt_address(rc, a, sizeof a);
	log_escape(e1, sizeof e1, a, strlen(a));
	log_escape(e2, sizeof e2, text, strlen(text));
	j->changed = true;
	if (code / 100 == 2) {
		log_info("qid=%s event=relayed rcpt=<%s> host=%s reply=\"%s\"", j->env.qid, e1, host, e2);
		/* recorded after this domain's session (relay_process), or never: a message
		 * whose last recipients these are leaves the queue instead */
		if (j->unmarked != NULL)
			j->unmarked[i] = true;
		else if (spool_mark_done(rl->sp, j->env.qid, i) < 0)
			log_warn("qid=%s event=mark-done-failed rcpt=<%s> note=\"may be delivered twice\"",
			         j->env.qid, e1);
		rc->done = true;
		return;
	}
	relay_set_error(rc, text);
	if (code / 100 == 5) {
		log_warn("qid=%s event=failed rcpt=<%s> host=%s error=\"%s\"", j->env.qid, e1, host, e2);
		rc->failed = true;
		return;
	}
	rc->attempts++;
	if ((uint64_t)(now - j->env.arrival) >= rl->o.cfg.give_up_s) {
		char t[SMTP_CLIENT_TEXT_MAX + 64];
		snprintf(t, sizeof t, "gave up after %u attempts; last error: %s", rc->attempts, text);
		relay_set_error(rc, t);
		log_warn("qid=%s event=failed rcpt=<%s> error=\"gave up: %s\"", j->env.qid, e1, e2);
		rc->failed = true;
		return;
	}
	uint64_t d = relay_backoff_s(rl, rc->attempts);
	rc->next_try = now + (time_t)d;
	log_warn("qid=%s event=deferred rcpt=<%s> host=%s attempt=%u retry_in_s=%llu error=\"%s\"",
	         j->env.qid, e1, host, rc->attempts, (unsigned long long)d, e2);
}

/* Deliver the due rcpts of one domain (indices in idx[0..n)) over link: an idle
 * connection handed over by relay_dest_take (link->cl set), else a new one. On
 * return link holds the connection if it is still open (relay_dest_give decides). */
static void relay_domain(struct relay_job *j, const char *domain, size_t *idx, size_t n,
                         struct relay_link *link)
{
	struct relay *rl = j->rl;
	struct relay_mx mx[RELAY_MX_MAX];
	struct config_transport tmp;
	const struct config_transport *route = config_relay_route(&rl->o.cfg, domain, &tmp);
	char err[SMTP_CLIENT_TEXT_MAX + 128] = "";
	char hostdesc[400] = "-";
	unsigned port = rl->o.cfg.port;
	int nmx = 0;
	enum relay_res res = RELAY_OK;
	const char **rcpts = calloc(n, sizeof *rcpts);
	const char **dsnr = calloc(n, sizeof *dsnr);
	char (*dsnbuf)[300] = calloc(n, sizeof *dsnbuf);
	char (*addr)[600] = calloc(n, sizeof *addr);
	char dsn_mail[300];
	if (rcpts == NULL || dsnr == NULL || dsnbuf == NULL || addr == NULL) {
		for (size_t k = 0; k < n; k++)
			relay_result(j, idx[k], 451, "451 4.3.0 out of memory", "-");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		const struct spool_rcpt *rc = &j->env.rcpts[idx[k]];
		spool_rcpt_address(rc, addr[k], sizeof addr[k]);
		rcpts[k] = addr[k];
		size_t o = 0;
		dsnbuf[k][0] = '\0';
		if (rc->notify != 0) {
			o += (size_t)snprintf(dsnbuf[k], sizeof dsnbuf[k], " NOTIFY=%s%s%s%s",
			                      rc->notify & SPOOL_NOTIFY_NEVER ? "NEVER" : "",
			                      rc->notify & SPOOL_NOTIFY_SUCCESS ? "SUCCESS," : "",
			                      rc->notify & SPOOL_NOTIFY_FAILURE ? "FAILURE," : "",
			                      rc->notify & SPOOL_NOTIFY_DELAY ? "DELAY," : "");
			if (o > 0 && dsnbuf[k][o - 1] == ',')
				dsnbuf[k][--o] = '\0';
		}
		if (rc->orcpt != NULL && o < sizeof dsnbuf[k])
			snprintf(dsnbuf[k] + o, sizeof dsnbuf[k] - o, " ORCPT=%s", rc->orcpt);
		dsnr[k] = dsnbuf[k];
	}
	snprintf(dsn_mail, sizeof dsn_mail, "%s%s%s", j->env.ret == 1 ? " RET=FULL" : j->env.ret == 2 ? " RET=HDRS" : "",
	         j->env.envid ? " ENVID=" : "", j->env.envid ? j->env.envid : "");
	struct smtp_client_msg m = {
		.from = j->env.from,
		.rcpts = rcpts,
		.nrcpts = n,
		.size = j->body_len,
		.eightbit = j->env.body != 0,
		.smtputf8 = j->env.smtputf8,
		.dsn_mail = dsn_mail[0] ? dsn_mail : NULL,
		.dsn_rcpt = dsnr,
	};
	if (link->cl != NULL) {
		int r = relay_session(rl, &link->c, link->cl, NULL, &m, j->fd, j->body_off, j->body_len, err,
		                      sizeof err);
		if (r == 0 && !relay_link_stale(link->cl, n)) {
			link->nmsgs++;
			log_info("qid=%s event=connection-reused host=%s messages=%u", j->env.qid,
			         link->hostdesc, link->nmsgs);
			for (size_t k = 0; k < n; k++) {
				const struct smtp_client_reply *rr = smtp_client_rcpt_result(link->cl, k);
				relay_result(j, idx[k], rr->code, rr->text[0] ? rr->text : "no reply",
				             link->hostdesc);
				link->tempfail =
					link->tempfail || (rr->code / 100 != 2 && rr->code / 100 != 5);
			}
			goto out;
		}
		log_info("qid=%s event=reuse-failed host=%s note=\"trying a new connection\"",
		         j->env.qid, link->hostdesc);
		relay_link_close(link);
	}
	if (route != NULL) {
		snprintf(mx[0].host, sizeof mx[0].host, "%s", route->host);
		port = route->port;
		nmx = 1;
	} else {
		nmx = relay_mx_lookup(rl, domain, mx, RELAY_MX_MAX, &res, err, sizeof err);
	}
	if (nmx == 0) {
		for (size_t k = 0; k < n; k++)
			relay_result(j, idx[k], res == RELAY_PERM ? 550 : 451, err, "-");
		goto out;
	}
	for (int h = 0; h < nmx; h++) {
		struct sockaddr_storage addrs[RELAY_ADDR_MAX];
		int na = relay_addrs(rl, mx[h].host, port, addrs, RELAY_ADDR_MAX);
		if (na == 0) {
			snprintf(err, sizeof err, "451 4.4.4 no address for host %.255s", mx[h].host);
			continue;
		}
		for (int a = 0; a < na; a++) {
			char ip[INET6_ADDRSTRLEN] = "?";
			if (addrs[a].ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&addrs[a])->sin_addr, ip, sizeof ip);
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addrs[a])->sin6_addr, ip,
				          sizeof ip);
			snprintf(hostdesc, sizeof hostdesc, "%.255s[%s]:%u", mx[h].host, ip, port);
			struct relay_conn c = {.rl = rl, .fd = -1, .timeout_s = rl->o.cfg.timeout_s};
			c.fd = relay_connect(&addrs[a], rl->o.cfg.timeout_s);
			if (c.fd < 0) {
				snprintf(err, sizeof err, "451 4.4.1 connect to %s: %s", hostdesc,
				         strerror(-c.fd));
				log_info("qid=%s event=connect-failed host=%s error=\"%s\"", j->env.qid,
				         hostdesc, strerror(-c.fd));
				continue;
			}
			bool sh = route != NULL && route->smarthost;
			bool auth = sh && rl->o.cfg.auth_user[0] != '\0';
			struct smtp_client_opts co = {
				.helo = rl->hostname,
				.starttls = (rl->o.cfg.starttls || auth || rl->o.cfg.tls_verify) &&
				            rl->ssl != NULL,
				.require_tls = rl->o.cfg.tls_verify,
				.auth_user = auth ? rl->o.cfg.auth_user : NULL,
				.auth_pass = auth ? rl->o.cfg.auth_pass : NULL,
			};
			if (sh && rl->o.cfg.smarthost_implicit_tls) {
				/* implicit TLS (port 465): handshake before the greeting */
				if (relay_conn_tls(&c, mx[h].host) < 0) {
					snprintf(err, sizeof err, "451 4.7.0 TLS handshake with %s failed",
					         hostdesc);
					if (c.ssl != NULL)
						SSL_free(c.ssl);
					close(c.fd);
					continue;
				}
				co.tls_active = true;
			}
			struct smtp_client *cl = smtp_client_new(&co);
			int r = cl ? relay_session(rl, &c, cl, mx[h].host, &m, j->fd, j->body_off, j->body_len, err,
			                           sizeof err)
			           : -EAGAIN;
			if (r == 0) {
				for (size_t k = 0; k < n; k++) {
					const struct smtp_client_reply *rr = smtp_client_rcpt_result(cl, k);
					relay_result(j, idx[k], rr->code, rr->text[0] ? rr->text : "no reply",
					             hostdesc);
					link->tempfail =
						link->tempfail || (rr->code / 100 != 2 && rr->code / 100 != 5);
				}
				link->c = c;
				link->cl = cl;
				link->nmsgs = 1;
				snprintf(link->hostdesc, sizeof link->hostdesc, "%s", hostdesc);
				goto out;
			}
			log_info("qid=%s event=session-failed host=%s error=\"%s\"", j->env.qid,
			         hostdesc, err);
			if (c.ssl != NULL) {
				SSL_shutdown(c.ssl);
				SSL_free(c.ssl);
			}
			close(c.fd);
			smtp_client_free(cl);
		}
	}
	/* every host failed at connection level: temporary */
	{
		char t[sizeof err + 16]; /* room for the "451 4.4.2 " prefix */
		if (err[0] == '4')
			snprintf(t, sizeof t, "%s", err);
		else /* no reply at all, or a 5xx greeting from every MX: still temporary */
			snprintf(t, sizeof t, "451 4.4.2 %s", err);
		for (size_t k = 0; k < n; k++)
			relay_result(j, idx[k], 451, t, hostdesc);
	}
out:
	free(rcpts);
	free(dsnr);
	free(dsnbuf);
	free(addr);
}

/* Read the original message bytes for a DSN. */
static char *relay_read_body(struct relay_job *j, size_t max, size_t *len)
{
	size_t n = j->body_len > max ? max : (size_t)j->body_len;
	char *p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	ssize_t r = pread(j->fd, p, n, (off_t)j->body_off);
	*len = r > 0 ? (size_t)r : 0;
	return p;
}

/* Test hook: TERN_KILL_AT=<point> ends ternd with SIGKILL there, so tests can prove
 * that a crash between the steps of a bounce neither loses nor repeats it
 * (tests/e2e/test_bounce_crash.py; docs/QUEUE.md "Relay" step 5). */
static void relay_kill_point(const char *point)
{
	const char *k = getenv("TERN_KILL_AT");

	if (k != NULL && strcmp(k, point) == 0)
		raise(SIGKILL);
}

/* Make the DSN for the failed-but-not-done rcpts (or a delay warning). Returns 0
 * when the DSN exists (or none is owed), negative to retry later. */
static int relay_make_dsn(struct relay_job *j, bool *pick, bool delayed, const char *dsnqid)
{
	struct relay *rl = j->rl;
	struct spool_envelope d;
	struct spool_rcpt rc;
	struct buf b;
	size_t olen = 0;
	char *orig = NULL, user[300], domain[300];
	int r;
	const char *at = strrchr(j->env.from, '@');
	if (at == NULL)
		return 0;
	snprintf(user, sizeof user, "%.*s", (int)(at - j->env.from), j->env.from);
	snprintf(domain, sizeof domain, "%s", at + 1);
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	memset(&d, 0, sizeof d);
	memset(&rc, 0, sizeof rc);
	buf_init(&b, 0);
	size_t want = j->env.ret == 2 ? 65536 : RELAY_FULL_MAX + 1;
	orig = relay_read_body(j, want, &olen);
	if (orig == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = bounce_build(&b, rl->hostname, &j->env, pick, delayed, orig, olen,
	                      j->body_len <= RELAY_FULL_MAX ? RELAY_FULL_MAX : 0, time(NULL))) < 0)
		goto fail;
	rc.orig = j->env.from;
	rc.user = user;
	rc.domain = domain;
	rc.remote = !rl->accept_any;
	for (size_t i = 0; i < rl->nlocal; i++)
		if (strcasecmp(rl->local_domains[i], domain) == 0)
			rc.remote = false;
	d.from = "";
	d.helo = rl->hostname;
	d.client_addr = "127.0.0.1";
	d.rcpts = &rc;
	d.nrcpts = 1;
	d.arrival = time(NULL);
	d.held = true; /* released once the original records the bounce */
	r = spool_inject(rl->sp, dsnqid, &d, b.ptr, b.len);
	if (r == -EEXIST)
		r = 0;
fail:
	free(orig);
	buf_free(&b);
	return r;
}

/* Release a held DSN and hand it to delivery. */
static void relay_release(struct relay *rl, const char *qid)
{
	if (spool_set_hold(rl->sp, qid, false) == 0 && rl->o.local_enqueue != NULL)
		rl->o.local_enqueue(rl->o.arg, qid);
}

/* Release DSN dq of the original qid if it is still held. */
static void relay_release_left(struct relay *rl, const char *qid, const char *dq)
{
	char path[PATH_MAX], hold[PATH_MAX + 8];

	if (spool_queue_path(rl->sp, dq, path, sizeof path) < 0)
		return;
	snprintf(hold, sizeof hold, "%s.hold", path);
	if (access(hold, F_OK) != 0)
		return;
	log_info("qid=%s event=bounce-released dsn=%s note=\"held since a crash\"", qid, dq);
	relay_release(rl, dq);
}

/* The original is final and about to go: it has recorded every bounce it made
 * (<qid>D1 .. <qid>D<dsn_seq>) and its delay warning (<qid>W once warned), so any of
 * them still held was left so by a crash between the record and the release
 * (docs/QUEUE.md "Relay" steps 5 and 6): release it now, or it would never be
 * delivered nor removed. */
static void relay_release_recorded(struct relay *rl, const struct spool_envelope *env)
{
	char dq[SPOOL_QID_MAX + 16];

	for (unsigned k = 1; k <= env->dsn_seq; k++) {
		snprintf(dq, sizeof dq, "%sD%u", env->qid, k);
		relay_release_left(rl, env->qid, dq);
	}
	if (env->warned) {
		snprintf(dq, sizeof dq, "%sW", env->qid);
		relay_release_left(rl, env->qid, dq);
	}
}

/* Remote: marked so in the envelope, or (config changed since) not one of ours. */
static bool relay_is_remote(const struct relay *rl, const struct spool_rcpt *rc)
{
	if (rc->remote)
		return true;
	if (rl->accept_any)
		return false;
	for (size_t i = 0; i < rl->nlocal; i++)
		if (strcasecmp(rl->local_domains[i], rc->domain) == 0)
			return false;
	return true;
}

static bool relay_notify(const struct spool_rcpt *rc, unsigned bit)
{
	if (rc->notify == 0)
		return bit != SPOOL_NOTIFY_SUCCESS; /* default: failures and delays */
	return (rc->notify & bit) != 0;
}

/* Bounce recipients that failed for good and are not yet done. */
static int relay_bounces(struct relay_job *j)
{
	struct relay *rl = j->rl;
	size_t nf = 0, nd = 0;
	int r = 0;
	bool *pick = calloc(j->env.nrcpts + 1, sizeof *pick);
	if (pick == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < j->env.nrcpts; i++) {
		struct spool_rcpt *rc = &j->env.rcpts[i];
		if (!rc->failed || rc->done)
			continue;
		nf++;
		if (relay_notify(rc, SPOOL_NOTIFY_FAILURE)) {
			pick[i] = true;
			nd++;
		}
	}
	if (nf == 0)
		goto out;
	char dsnqid[SPOOL_QID_MAX + 8];
	bool want_dsn = nd > 0 && j->env.from[0] != '\0';
	if (want_dsn) {
		/* the sequence number is made durable before the DSN exists, so a retry after a
		 * crash finds the same DSN id and does not make a second one */
		snprintf(dsnqid, sizeof dsnqid, "%sD%u", j->env.qid, j->env.dsn_seq);
		relay_kill_point("bounce-owed");
		if ((r = relay_make_dsn(j, pick, false, dsnqid)) < 0) {
			log_error("qid=%s event=bounce-failed error=\"%s\"", j->env.qid, strerror(-r));
			goto out;
		}
		log_info("qid=%s event=bounced dsn=%s to=<%s>", j->env.qid, dsnqid, j->env.from);
		relay_kill_point("bounce-written");
	} else {
		log_info("qid=%s event=bounce-suppressed reason=%s", j->env.qid,
		         j->env.from[0] == '\0' ? "null-sender" : "notify");
	}
	for (size_t i = 0; i < j->env.nrcpts; i++) {
		struct spool_rcpt *rc = &j->env.rcpts[i];
		if (rc->failed && !rc->done) {
			if (spool_mark_done(rl->sp, j->env.qid, i) < 0)
				log_warn("qid=%s event=mark-done-failed note=\"bounce may repeat\"",
				         j->env.qid);
			rc->done = true;
		}
	}
	if (want_dsn) {
		relay_kill_point("bounce-recorded");
		relay_release(rl, dsnqid);
	}
out:
	free(pick);
	return r;
}

/* Returns the delay in ms until this message needs another look, or UINT64_MAX.
 * *busy: the hash of a destination whose connections were all busy (0: none). */
static uint64_t relay_process(struct relay *rl, const char *qid, bool force, uint64_t *busy)
{
	struct relay_job j;
	uint64_t next = UINT64_MAX;
	memset(&j, 0, sizeof j);
	j.rl = rl;
	j.fd = -1;
	char path[PATH_MAX];
	int r = spool_read_envelope(rl->sp, qid, &j.env, &j.body_off);
	if (r == -ENOENT)
		return UINT64_MAX;
	if (r < 0) {
		log_error("qid=%s event=relay-deferred error=\"read envelope: %s\"", qid, strerror(-r));
		return (uint64_t)rl->o.cfg.retry_first_s * 1000u;
	}
	if (j.env.held)
		goto out;
	if (spool_queue_path(rl->sp, qid, path, sizeof path) < 0 ||
	    (j.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		goto out;
	struct stat st;
	if (fstat(j.fd, &st) < 0 || (uint64_t)st.st_size < j.body_off)
		goto out;
	j.body_len = (uint64_t)st.st_size - j.body_off;
	j.unmarked = calloc(j.env.nrcpts + 1, sizeof *j.unmarked); /* NULL: record at once */
	time_t now = time(NULL);

	/* A bounce owed from before a crash: finish it first (same DSN id). */
	bool pending = false;
	for (size_t i = 0; i < j.env.nrcpts; i++)
		if (j.env.rcpts[i].failed && !j.env.rcpts[i].done)
			pending = true;
	if (pending && relay_bounces(&j) < 0) {
		next = (uint64_t)rl->o.cfg.retry_first_s * 1000u;
		goto out;
	}

	/* due remote recipients, grouped by domain */
	size_t *idx = calloc(j.env.nrcpts + 1, sizeof *idx);
	bool *seen = calloc(j.env.nrcpts + 1, sizeof *seen);
	if (idx == NULL || seen == NULL) {
		free(idx);
		free(seen);
		next = 60000;
		goto out;
	}
	for (size_t i = 0; i < j.env.nrcpts; i++) {
		struct spool_rcpt *rc = &j.env.rcpts[i];
		if (seen[i] || !relay_is_remote(rl, rc) || rc->done || rc->failed)
			continue;
		if (!force && rc->next_try > now)
			continue;
		size_t n = 0;
		for (size_t k = i; k < j.env.nrcpts; k++) {
			struct spool_rcpt *o = &j.env.rcpts[k];
			if (!seen[k] && relay_is_remote(rl, o) && !o->done && !o->failed &&
			    (force || o->next_try <= now) && strcasecmp(o->domain, rc->domain) == 0) {
				seen[k] = true;
				idx[n++] = k;
			}
		}
		struct relay_link link = {.c = {.rl = rl, .fd = -1}};
		if (!relay_dest_take(rl, rc->domain, &link)) {
			/* destination busy: parked until a connection is given back */
			if (*busy == 0)
				*busy = relay_domain_hash(rc->domain);
			continue;
		}
		relay_domain(&j, rc->domain, idx, n, &link);
		relay_dest_give(rl, rc->domain, &link);
		/* Relayed recipients are recorded now, before the next domain's session,
		 * unless nothing is left: then the queue file is removed below and no
		 * record is needed (a crash before the removal reaches the disk sends
		 * the message again: a duplicate, never a loss; as Postfix does). */
		if (!relay_all_done(&j))
			relay_record_done(&j);
	}
	free(idx);
	free(seen);
	bool finished = relay_all_done(&j);

	bool failed_new = false;
	for (size_t i = 0; i < j.env.nrcpts; i++)
		if (j.env.rcpts[i].failed && !j.env.rcpts[i].done)
			failed_new = true;
	if (failed_new)
		j.env.dsn_seq++;
	/* a message that leaves the queue needs no state (its attempts, errors) */
	if (j.changed && !finished && (r = spool_write_state(rl->sp, &j.env)) < 0)
		log_error("qid=%s event=state-write-failed error=\"%s\"", qid, strerror(-r));
	if (failed_new && r == 0)
		relay_bounces(&j);

	/* delay warning */
	now = time(NULL);
	if (!j.env.warned && rl->o.cfg.delay_warning_s > 0 && j.env.from[0] != '\0' &&
	    (uint64_t)(now - j.env.arrival) >= rl->o.cfg.delay_warning_s) {
		bool *pick = calloc(j.env.nrcpts + 1, sizeof *pick);
		size_t np = 0;
		for (size_t i = 0; pick && i < j.env.nrcpts; i++) {
			struct spool_rcpt *rc = &j.env.rcpts[i];
			if (relay_is_remote(rl, rc) && !rc->done && !rc->failed && rc->attempts > 0 &&
			    relay_notify(rc, SPOOL_NOTIFY_DELAY)) {
				pick[i] = true;
				np++;
			}
		}
		if (np > 0) {
			char wq[SPOOL_QID_MAX + 8];
			j.env.warned = true; /* at most one warning; a crash may lose it */
			if (spool_write_state(rl->sp, &j.env) == 0) {
				snprintf(wq, sizeof wq, "%sW", qid);
				if (relay_make_dsn(&j, pick, true, wq) == 0) {
					relay_kill_point("warning-written");
					log_info("qid=%s event=delay-warning dsn=%s to=<%s>", qid, wq, j.env.from);
					relay_release(rl, wq);
				}
			}
		}
		free(pick);
	}

	/* done? next look? */
	bool all = true;
	for (size_t i = 0; i < j.env.nrcpts; i++) {
		struct spool_rcpt *rc = &j.env.rcpts[i];
		if (rc->done)
			continue;
		all = false;
		if (relay_is_remote(rl, rc) && !rc->failed) {
			uint64_t d = rc->next_try > now ? (uint64_t)(rc->next_try - now) * 1000u : 0;
			/* still due after this job: its destination was busy (every other due
			 * recipient was tried and is done, failed or later) */
			if (d == 0 && *busy != 0)
				d = RELAY_PARK_MS;
			if (d < next)
				next = d;
		}
	}
	if (all) {
		relay_release_recorded(rl, &j.env);
		if ((r = spool_remove(rl->sp, qid)) < 0 && r != -ENOENT) {
			log_warn("qid=%s event=remove-failed error=\"%s\"", qid, strerror(-r));
			relay_record_done(&j); /* it stays: its recipients must not go again */
		} else {
			log_info("qid=%s event=removed", qid);
		}
		next = UINT64_MAX;
	}
out:
	free(j.unmarked);
	if (j.fd >= 0)
		close(j.fd);
	spool_envelope_free(&j.env);
	return next;
}

struct relay_worker_arg {
	struct relay *rl;
	unsigned idx;
};

static void *relay_worker_main(void *arg)
{
	pthread_setname_np(pthread_self(), "relay"); /* top -H, ps -L */
	struct relay_worker_arg *wa = arg;
	struct relay *rl = wa->rl;
	unsigned self = wa->idx;
	free(wa);
	pthread_mutex_lock(&rl->mu);
	while (!rl->stopping) {
		uint64_t idle_next = relay_idle_expire_locked(rl, false);
		if (rl->stopping)
			break;
		uint64_t now = relay_now_ms();
		if (rl->n == 0 && idle_next == UINT64_MAX) {
			pthread_cond_wait(&rl->cv, &rl->mu);
			continue;
		}
		if (rl->n == 0 || rl->heap[0].due_ms > now) {
			struct timespec ts;
			uint64_t due = rl->n > 0 ? rl->heap[0].due_ms : UINT64_MAX;
			if (idle_next != UINT64_MAX && now + idle_next < due)
				due = now + idle_next;
			ts.tv_sec = (time_t)(due / 1000u);
			ts.tv_nsec = (long)(due % 1000u) * 1000000L;
			pthread_cond_timedwait(&rl->cv, &rl->mu, &ts);
			continue;
		}
		struct relay_item it = relay_pop(rl);
		bool busy = false;
		for (unsigned i = 0; i < rl->nthreads; i++)
			if (i != self && strcmp(rl->active[i], it.qid) == 0)
				busy = true;
		if (busy) {
			/* another worker is on it: look again after it */
			relay_push(rl, it.qid, now + 1000, it.force);
			continue;
		}
		snprintf(rl->active[self], SPOOL_QID_MAX, "%s", it.qid);
		/* woken early, or by its own time: a later wake-up is not for it */
		relay_unpark_qid_locked(rl, it.qid);
		pthread_mutex_unlock(&rl->mu);
		uint64_t busy_dest = 0;
		uint64_t next = relay_process(rl, it.qid, it.force, &busy_dest);
		pthread_mutex_lock(&rl->mu);
		rl->active[self][0] = '\0';
		if (busy_dest != 0 && next != UINT64_MAX) {
			/* a connection given back meanwhile: again now; else wait for one */
			if (relay_dest_open_locked(rl, busy_dest))
				next = 0;
			else if (!relay_park_locked(rl, it.qid, busy_dest) && next > RELAY_BUSY_MS)
				next = RELAY_BUSY_MS;
		}
		if (next != UINT64_MAX) {
			bool dup = false;
			for (size_t i = 0; i < rl->n; i++)
				if (strcmp(rl->heap[i].qid, it.qid) == 0 && rl->heap[i].due_ms <= now + next)
					dup = true;
			if (!dup && relay_push(rl, it.qid, relay_now_ms() + next, false) < 0)
				log_error("qid=%s event=retry-lost error=\"out of memory\"", it.qid);
		}
	}
	pthread_mutex_unlock(&rl->mu);
	return NULL;
}

int relay_start(struct relay **out, struct spool *sp, const struct relay_opts *o)
{
	int r;
	unsigned started = 0;
	pthread_condattr_t ca;
	struct relay *rl = calloc(1, sizeof *rl);
	*out = NULL;
	if (rl == NULL)
		return -ENOMEM;
	rl->sp = sp;
	rl->o = *o;
	/* own copy of the transport map: the config may be reloaded and freed */
	if (o->cfg.ntransports > 0) {
		rl->transports = calloc(o->cfg.ntransports, sizeof *rl->transports);
		if (rl->transports == NULL) {
			free(rl);
			return -ENOMEM;
		}
		memcpy(rl->transports, o->cfg.transports, o->cfg.ntransports * sizeof *rl->transports);
	}
	rl->o.cfg.transports = rl->transports;
	if (o->local != NULL) {
		rl->accept_any = o->local->accept_any_domain;
		rl->local_domains = calloc(o->local->nlocal_domains + 1, sizeof(char *));
		for (size_t i = 0; rl->local_domains && i < o->local->nlocal_domains; i++)
			if ((rl->local_domains[rl->nlocal] = strdup(o->local->local_domains[i])) != NULL)
				rl->nlocal++;
	}
	snprintf(rl->hostname, sizeof rl->hostname, "%s", o->hostname ? o->hostname : "localhost");
	rl->nthreads = o->cfg.threads ? o->cfg.threads : 1;
	if (rl->o.cfg.retry_first_s == 0)
		rl->o.cfg.retry_first_s = 1;
	if (rl->o.cfg.retry_max_s < rl->o.cfg.retry_first_s)
		rl->o.cfg.retry_max_s = rl->o.cfg.retry_first_s;
	if (rl->o.cfg.max_per_destination == 0)
		rl->o.cfg.max_per_destination = 1;
	ares_library_init(ARES_LIB_INIT_ALL);
	rl->ssl = SSL_CTX_new(TLS_client_method());
	if (rl->ssl != NULL) {
		SSL_CTX_set_min_proto_version(rl->ssl, TLS1_2_VERSION);
		if (!o->cfg.tls_verify) {
			SSL_CTX_set_verify(rl->ssl, SSL_VERIFY_NONE, NULL); /* opportunistic */
		} else {
			/* relay_tls_verify: the chain must verify against the CA file (or the
			 * system store) and the name must match (relay_conn_tls sets it) */
			SSL_CTX_set_verify(rl->ssl, SSL_VERIFY_PEER, NULL);
			int ok = o->cfg.tls_ca_file[0] != '\0'
			                 ? SSL_CTX_load_verify_locations(rl->ssl, o->cfg.tls_ca_file, NULL)
			                 : SSL_CTX_set_default_verify_paths(rl->ssl);
			if (ok != 1) {
				log_error("event=relay-tls-ca-failed file=%s note=\"every TLS handshake "
				          "will fail\"",
				          o->cfg.tls_ca_file[0] ? o->cfg.tls_ca_file : "(system)");
			}
		}
	}
	pthread_mutex_init(&rl->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rl->cv, &ca);
	pthread_condattr_destroy(&ca);
	rl->threads = calloc(rl->nthreads, sizeof *rl->threads);
	rl->active = calloc(rl->nthreads, sizeof *rl->active);
	if (rl->threads == NULL || rl->active == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (; started < rl->nthreads; started++) {
		struct relay_worker_arg *wa = malloc(sizeof *wa);
		if (wa == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		wa->rl = rl;
		wa->idx = started;
		r = -pthread_create(&rl->threads[started], NULL, relay_worker_main, wa);
		if (r < 0) {
			free(wa);
			goto fail;
		}
	}
	*out = rl;
	return 0;
fail:
	rl->nthreads = started;
	relay_stop(rl);
	relay_free(rl);
	return r;
}

void relay_stop(struct relay *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_lock(&rl->mu);
	rl->stopping = true;
	atomic_store(&rl->halt, true);
	pthread_cond_broadcast(&rl->cv);
	pthread_mutex_unlock(&rl->mu);
	for (unsigned i = 0; i < rl->nthreads && !rl->joined; i++)
		pthread_join(rl->threads[i], NULL);
	rl->joined = true;
}

void relay_free(struct relay *rl)
{
	if (rl == NULL)
		return;
	relay_stop(rl);
	for (size_t i = 0; i < RELAY_IDLE_MAX; i++)
		if (rl->idle[i].cl != NULL)
			relay_link_close(&rl->idle[i]); /* halted: QUIT is sent, not waited for */
	for (size_t i = 0; i < rl->nlocal; i++)
		free(rl->local_domains[i]);
	free(rl->local_domains);
	free(rl->threads);
	free(rl->active);
	free(rl->heap);
	free(rl->transports);
	if (rl->ssl != NULL)
		SSL_CTX_free(rl->ssl);
	pthread_mutex_destroy(&rl->mu);
	pthread_cond_destroy(&rl->cv);
	ares_library_cleanup();
	free(rl);
}
