/* log.c - key=value event lines to stderr or syslog. Each write(2) carries whole
 * lines (at most LOG_HOLD_MAX bytes, within PIPE_BUF), so lines from threads never
 * interleave. A thread may hold its lines and write them together (log_hold): the
 * event loop does, and flushes before it waits, so a line is late by at most one
 * round of the loop and costs no system call of its own. Warnings and worse are
 * written at once (with whatever was held before them). */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static const char *log_prog = "tern";
static enum log_level log_min = LOG_LV_INFO;
static int log_syslog;
static int log_pid; /* ternd never forks */

#define LOG_HOLD_MAX 4096
static __thread bool log_holding;
static __thread size_t log_held;
static __thread char log_hold_buf[LOG_HOLD_MAX];

static const char *const log_names[] = {"debug", "info", "warning", "error", "fatal"};

void log_init(const char *progname, enum log_level min, int use_syslog)
{
	log_prog = progname;
	log_min = min;
	log_syslog = use_syslog;
	log_pid = (int)getpid();
	if (use_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	if (lv < log_min)
		return;
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	if (log_syslog) {
		static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT};
		char body[1800];
		vsnprintf(body, sizeof body, fmt, ap);
		va_end(ap);
		syslog(prio[lv], "%s: %s", log_names[lv], body);
		return;
	}
	int n = snprintf(line, sizeof line, "%s[%d]: %s: ", log_prog,
	                 log_pid ? log_pid : (int)getpid(), log_names[lv]);
	if (n < 0)
		n = 0;
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	_Static_assert(sizeof line <= LOG_HOLD_MAX, "a held line always fits the hold buffer");
	if (log_holding) {
		if (log_held + len > LOG_HOLD_MAX)
			log_flush();
		memcpy(log_hold_buf + log_held, line, len);
		log_held += len;
		if (lv >= LOG_LV_WARN)
			log_flush();
		return;
	}
	log_flush();
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void log_hold(bool on)
{
	if (!on)
		log_flush();
	log_holding = on;
}

void log_flush(void)
{
	if (log_held == 0)
		return;
	ssize_t w = write(STDERR_FILENO, log_hold_buf, log_held);
	(void)w;
	log_held = 0;
}

char *log_escape(char *out, size_t outsz, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (outsz == 0)
		return out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outsz)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}
