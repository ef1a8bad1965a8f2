/* budget_test.c - util/budget.h: charging, the limit, growing a buffer under it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/budget.h"

#include <string.h>

static void budget_t_take_give(void **state)
{
	(void)state;
	atomic_size_t used = 0;
	assert_true(budget_take(&used, 60, 100));
	assert_true(budget_take(&used, 40, 100)); /* exactly the limit */
	assert_false(budget_take(&used, 1, 100)); /* one more: refused, nothing charged */
	assert_int_equal(atomic_load(&used), 100);
	budget_give(&used, 40);
	assert_true(budget_take(&used, 30, 100));
	assert_int_equal(atomic_load(&used), 90);
}

static void budget_t_grow(void **state)
{
	(void)state;
	atomic_size_t used = 0;
	char *b = malloc(16);
	assert_non_null(b);
	memcpy(b, "0123456789abcdef", 16);
	/* over the limit: the buffer and the budget stay as they were */
	char *before = b;
	assert_false(budget_grow(&used, 1000, &b, 4096));
	assert_ptr_equal(b, before);
	assert_int_equal(atomic_load(&used), 0);
	/* room: grown, content kept, charged */
	assert_true(budget_grow(&used, 8192, &b, 4096));
	assert_memory_equal(b, "0123456789abcdef", 16);
	memset(b + 16, 'x', 4096 - 16); /* all of it writable (ASan checks) */
	assert_int_equal(atomic_load(&used), 4096);
	/* a second one does not fit any more */
	char *c = malloc(1);
	assert_non_null(c);
	assert_false(budget_grow(&used, 8192, &c, 8192));
	budget_give(&used, 4096);
	assert_true(budget_grow(&used, 8192, &c, 8192));
	assert_int_equal(atomic_load(&used), 8192);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(budget_t_take_give),
	    cmocka_unit_test(budget_t_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
