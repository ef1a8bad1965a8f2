/* log.h - one line per event, key=value pairs (STYLE.md "Logging").
 * Lines go to stderr (foreground) or syslog. Peer-supplied values must go through
 * log_escape() before they reach a log line. */
#ifndef TERN_LOG_H
#define TERN_LOG_H
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LV_DEBUG, LOG_LV_INFO, LOG_LV_WARN, LOG_LV_ERROR, LOG_LV_FATAL };

void log_init(const char *progname, enum log_level min, int use_syslog);
/* This thread's lines collect (up to 4 KiB) until log_flush() or a warning; off
 * flushes. For the event loop: one write per round instead of one per line. */
void log_hold(bool on);
void log_flush(void);
void log_msg(enum log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Escape peer bytes for a log line: printable ASCII kept, '"', '\\' and others as
 * \xHH, truncated to fit out (always NUL-terminated). Returns out. */
char *log_escape(char *out, size_t outsz, const char *p, size_t n);

#define log_debug(...) log_msg(LOG_LV_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LV_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LV_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LV_ERROR, __VA_ARGS__)
/* A program bug: log and abort. */
#define fatalx(...) do { log_msg(LOG_LV_FATAL, __VA_ARGS__); abort(); } while (0)

#endif
