/* authlimit_test.c - unit tests for the per-address AUTH failure table
 * (src/server/authlimit.c): the two-bucket sliding window, decay, IPv4/IPv6 keys
 * (IPv6 per /64, IPv4-mapped equal to IPv4), pruning. No sockets, no clock. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server/authlimit.h"

static struct sockaddr_storage t_sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_window_and_decay(void **state)
{
	struct authlimit *t = authlimit_new();
	struct sockaddr_storage a = t_sa("192.0.2.1"), b = t_sa("192.0.2.2");
	time_t now = 1000000;

	assert_non_null(t);
	assert_false(authlimit_is_throttled(t, SA(a), now, 3, 60));
	for (int i = 0; i < 3; i++)
		assert_int_equal(authlimit_fail(t, SA(a), now + i, 60), 0);
	assert_int_equal(authlimit_count(t, SA(a), now + 3, 60), 3);
	assert_true(authlimit_is_throttled(t, SA(a), now + 3, 3, 60));
	assert_false(authlimit_is_throttled(t, SA(b), now + 3, 3, 60)); /* other address */
	assert_false(authlimit_is_throttled(t, SA(a), now + 3, 0, 60));  /* 0: off */
	/* next window: the previous one still counts, in proportion to its overlap */
	assert_int_equal(authlimit_count(t, SA(a), now + 60, 60), 3);
	assert_int_equal(authlimit_count(t, SA(a), now + 90, 60), 2); /* ceil(3 * 30/60) */
	assert_int_equal(authlimit_count(t, SA(a), now + 119, 60), 1);
	assert_int_equal(authlimit_count(t, SA(a), now + 120, 60), 0);
	assert_int_equal(authlimit_prune(t, now + 90, 60), 1);
	assert_int_equal(authlimit_prune(t, now + 120, 60), 0);
	assert_int_equal(authlimit_count(t, SA(a), now + 120, 60), 0);
	authlimit_free(t);
	authlimit_free(NULL);
}

static void test_failures_spanning_windows(void **state)
{
	struct authlimit *t = authlimit_new();
	struct sockaddr_storage a = t_sa("198.51.100.7");
	time_t now = 5000;

	authlimit_fail(t, SA(a), now, 10);
	authlimit_fail(t, SA(a), now + 15, 10); /* second window */
	/* at now+15: prev=1 with 5/10 left (rounds up to 1), cur=1 */
	assert_int_equal(authlimit_count(t, SA(a), now + 15, 10), 2);
	authlimit_fail(t, SA(a), now + 45, 10); /* long gap: both buckets reset */
	assert_int_equal(authlimit_count(t, SA(a), now + 45, 10), 1);
	/* a clock stepping back does not crash or go negative */
	assert_true(authlimit_count(t, SA(a), now, 10) <= 1);
	assert_int_equal(authlimit_fail(t, SA(a), now, 10), 0);
	authlimit_free(t);
}

static void test_address_keys(void **state)
{
	struct authlimit *t = authlimit_new();
	struct sockaddr_storage v4 = t_sa("127.0.0.1"), mapped = t_sa("::ffff:127.0.0.1");
	struct sockaddr_storage h1 = t_sa("2001:db8:1:2::1"), h2 = t_sa("2001:db8:1:2:ffff::9");
	struct sockaddr_storage other = t_sa("2001:db8:1:3::1");

	authlimit_fail(t, SA(v4), 100, 60);
	assert_int_equal(authlimit_count(t, SA(mapped), 100, 60), 1);
	authlimit_fail(t, SA(h1), 100, 60);
	authlimit_fail(t, SA(h2), 100, 60);
	assert_int_equal(authlimit_count(t, SA(h1), 100, 60), 2); /* same /64 */
	assert_int_equal(authlimit_count(t, SA(other), 100, 60), 0);
	authlimit_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_and_decay),
		cmocka_unit_test(test_failures_spanning_windows),
		cmocka_unit_test(test_address_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
