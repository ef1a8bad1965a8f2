/* authcheck.c - one worker thread that checks passwords for the event loop (see
 * authcheck.h). It knows nothing about SMTP or sessions: a job is a secret, a
 * password, and a callback with its argument. */
#include "server/authcheck.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "policy/sasl.h"

struct authcheck_job {
	struct authcheck_job *next;
	char *secret;
	char *pass;
	authcheck_done_fn done;
	void *arg;
	int rc;
};

struct authcheck {
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct authcheck_job *todo, **todo_tail;
	struct authcheck_job *done, **done_tail;
	bool stop;
	int efd;
};

static void authcheck_job_free(struct authcheck_job *j)
{
	if (j == NULL)
		return;
	if (j->pass != NULL) {
		OPENSSL_cleanse(j->pass, strlen(j->pass));
		free(j->pass);
	}
	free(j->secret);
	free(j);
}

static void *authcheck_main(void *arg)
{
	pthread_setname_np(pthread_self(), "authcheck"); /* top -H, ps -L */
	struct authcheck *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (a->todo == NULL && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->todo == NULL && a->stop)
			break;
		struct authcheck_job *j = a->todo;

		a->todo = j->next;
		if (a->todo == NULL)
			a->todo_tail = &a->todo;
		pthread_mutex_unlock(&a->mu);
		j->rc = sasl_verify_password(j->secret, j->pass);
		OPENSSL_cleanse(j->pass, strlen(j->pass));
		j->next = NULL;
		pthread_mutex_lock(&a->mu);
		*a->done_tail = j;
		a->done_tail = &j->next;
		uint64_t one = 1;
		if (write(a->efd, &one, sizeof one) < 0) {
			/* the counter cannot overflow in practice; nothing else to do */
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int authcheck_start(struct authcheck **out)
{
	struct authcheck *a = calloc(1, sizeof *a);
	int rc;

	*out = NULL;
	if (a == NULL)
		return -ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->todo_tail = &a->todo;
	a->done_tail = &a->done;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = -pthread_create(&a->thr, NULL, authcheck_main, a);
	if (rc < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	if (a->efd >= 0)
		close(a->efd);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
	return rc;
}

void authcheck_stop(struct authcheck *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thr, NULL);
	while (a->done != NULL) {
		struct authcheck_job *j = a->done;

		a->done = j->next;
		authcheck_job_free(j);
	}
	close(a->efd);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}

int authcheck_event_fd(const struct authcheck *a)
{
	return a->efd;
}

int authcheck_submit(struct authcheck *a, const char *secret, const char *pass,
                     authcheck_done_fn done, void *arg)
{
	struct authcheck_job *j = calloc(1, sizeof *j);

	if (j == NULL)
		return -ENOMEM;
	j->secret = strdup(secret ? secret : "*");
	j->pass = strdup(pass);
	j->done = done;
	j->arg = arg;
	if (j->secret == NULL || j->pass == NULL) {
		authcheck_job_free(j);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->mu);
	*a->todo_tail = j;
	a->todo_tail = &j->next;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

void authcheck_run_completions(struct authcheck *a)
{
	struct authcheck_job *list;
	uint64_t v;

	if (read(a->efd, &v, sizeof v) < 0) {
		/* EAGAIN: nothing signalled; the list decides */
	}
	pthread_mutex_lock(&a->mu);
	list = a->done;
	a->done = NULL;
	a->done_tail = &a->done;
	pthread_mutex_unlock(&a->mu);
	while (list != NULL) {
		struct authcheck_job *j = list;

		list = j->next;
		j->done(j->arg, j->rc);
		authcheck_job_free(j);
	}
}
