/* client_mime_test.c - the tern client's message composer and header helpers
 * (src/client/client_mime.c): structure and boundaries, Bcc never written, 8bit vs
 * quoted-printable, address lists, -t header extraction, MIME type guessing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_mime.h"

static int client_test_build(struct client_compose *c, char **out, bool *b8)
{
	struct buf b;
	buf_init(&b, 0);
	int rc = client_compose_build(c, &b, b8);
	*out = strndup(b.ptr != NULL ? b.ptr : "", b.len);
	buf_free(&b);
	return rc;
}

static size_t client_test_count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void client_test_base(struct client_compose *c)
{
	memset(c, 0, sizeof *c);
	c->from = "Ann <a@example.org>";
	client_strv_push(&c->to, "b@example.org", 13);
	c->subject = "Hi";
	c->body = "hello\n";
	c->body_len = 6;
	c->now = 1700000000;
	c->msgid_domain = "test.example";
	c->boundary = "BND";
}

static void test_plain_headers(void **state)
{
	struct client_compose c;
	char *m;
	bool b8;
	client_test_base(&c);
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_false(b8);
	assert_non_null(strstr(m, "From: Ann <a@example.org>\r\n"));
	assert_non_null(strstr(m, "To: b@example.org\r\n"));
	assert_non_null(strstr(m, "Subject: Hi\r\n"));
	assert_non_null(strstr(m, "Date: "));
	assert_non_null(strstr(m, "Message-ID: <"));
	assert_non_null(strstr(m, "@test.example>\r\n"));
	assert_non_null(strstr(m, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(m, "Content-Transfer-Encoding: 7bit\r\n\r\nhello\r\n"));
	assert_null(strstr(m, "Bcc"));
	/* every line ends in CRLF */
	for (char *p = strchr(m, '\n'); p != NULL; p = strchr(p + 1, '\n'))
		assert_true(p > m && p[-1] == '\r');
	free(m);
	client_compose_free(&c);
}

static void test_no_to_means_undisclosed(void **state)
{
	struct client_compose c;
	char *m;
	bool b8;
	client_test_base(&c);
	client_strv_free(&c.to);
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_non_null(strstr(m, "To: undisclosed-recipients:;\r\n"));
	free(m);
	client_compose_free(&c);
}

static void test_bcc_header_refused(void **state)
{
	struct client_compose c;
	char *m;
	bool b8;
	client_test_base(&c);
	client_strv_push(&c.headers, "Bcc: x@y.org", 12);
	assert_int_equal(client_test_build(&c, &m, &b8), -EINVAL);
	free(m);
	client_strv_free(&c.headers);
	client_strv_push(&c.headers, "Bad Name: v", 11);
	assert_int_equal(client_test_build(&c, &m, &b8), -EINVAL);
	free(m);
	client_strv_free(&c.headers);
	client_strv_push(&c.headers, "Subject: override", 17);
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_int_equal(client_test_count(m, "Subject:"), 1);
	assert_non_null(strstr(m, "Subject: override\r\n"));
	free(m);
	client_compose_free(&c);
}

static void test_8bit_vs_qp(void **state)
{
	struct client_compose c;
	char *m;
	bool b8;
	client_test_base(&c);
	c.body = "gr\xc3\xbc\xc3\x9f" "e\n";
	c.body_len = strlen(c.body);
	c.allow_8bit = true;
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_true(b8);
	assert_non_null(strstr(m, "charset=utf-8"));
	assert_non_null(strstr(m, "Content-Transfer-Encoding: 8bit"));
	free(m);
	c.allow_8bit = false;
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_false(b8);
	assert_non_null(strstr(m, "Content-Transfer-Encoding: quoted-printable\r\n\r\ngr=C3=BC=C3=9Fe\r\n"));
	free(m);
	/* a line over 998 octets forces quoted-printable even for ASCII */
	char *longb = malloc(1200);
	memset(longb, 'y', 1199);
	longb[1199] = '\0';
	c.body = longb;
	c.body_len = 1199;
	c.allow_8bit = true;
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_non_null(strstr(m, "quoted-printable"));
	free(m);
	free(longb);
	client_compose_free(&c);
}

static void test_multipart_structure(void **state)
{
	struct client_compose c;
	char *m;
	bool b8;
	client_test_base(&c);
	c.html = "<p>hi</p>\n";
	c.html_len = strlen(c.html);
	c.natt = 1;
	c.att = calloc(1, sizeof *c.att);
	c.att[0].name = strdup("r\xc3\xa9sum\xc3\xa9.pdf");
	c.att[0].data = strdup("%PDF-1.4 fake");
	c.att[0].len = 13;
	c.att[0].type = client_mime_guess_type(c.att[0].name, c.att[0].data, c.att[0].len);
	assert_string_equal(c.att[0].type, "application/pdf");
	assert_int_equal(client_test_build(&c, &m, &b8), 0);
	assert_non_null(strstr(m, "Content-Type: multipart/mixed;\r\n boundary=\"BND_mix\"\r\n"));
	assert_non_null(strstr(m, "Content-Type: multipart/alternative;\r\n boundary=\"BND_alt\"\r\n"));
	assert_int_equal(client_test_count(m, "\r\n--BND_mix\r\n"), 2);
	assert_int_equal(client_test_count(m, "\r\n--BND_mix--\r\n"), 1);
	assert_int_equal(client_test_count(m, "--BND_alt\r\n"), 2);
	assert_int_equal(client_test_count(m, "\r\n--BND_alt--\r\n"), 1);
	/* the alternative part closes before the attachment starts */
	assert_true(strstr(m, "--BND_alt--") < strstr(m, "application/pdf"));
	assert_non_null(strstr(m, "text/plain"));
	assert_true(strstr(m, "text/plain") < strstr(m, "text/html"));
	assert_non_null(strstr(m, "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"));
	assert_non_null(strstr(m, "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZmFrZQ==\r\n"));
	free(m);
	client_compose_free(&c);
}

static void test_addr_split_and_spec(void **state)
{
	struct client_strv sv = {NULL, 0};
	const char *in = "a@x.org, \"Doe, J\" <j@y.org>,(c) b@z.org ,grp: c@w.org, d@w.org;";
	char spec[256];
	assert_int_equal(client_addr_split(in, strlen(in), &sv), 0);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[1], "\"Doe, J\" <j@y.org>");
	assert_int_equal(client_addr_spec(sv.v[1], spec, sizeof spec, false), 0);
	assert_string_equal(spec, "j@y.org");
	assert_int_equal(client_addr_spec(sv.v[2], spec, sizeof spec, false), 0);
	assert_string_equal(spec, "b@z.org");
	assert_string_equal(sv.v[3], "c@w.org");
	client_strv_free(&sv);
	assert_int_equal(client_addr_spec("not an address", spec, sizeof spec, false), -EINVAL);
	assert_int_equal(client_addr_spec("root", spec, sizeof spec, false), -EINVAL);
	assert_int_equal(client_addr_spec("root", spec, sizeof spec, true), 0);
	assert_int_equal(client_addr_spec("<a@b", spec, sizeof spec, false), -EINVAL);
	assert_int_equal(client_addr_spec("a\r\n@b", spec, sizeof spec, false), -EINVAL);
	assert_int_equal(client_addr_spec("@b", spec, sizeof spec, false), -EINVAL);
}

static void test_header_ops(void **state)
{
	const char *msg = "To: a@x.org,\r\n\tB <b@x.org>\r\nbcc: hidden@x.org\r\nSubject: s\r\n"
	                  "\r\nTo: body@x.org\r\n";
	struct client_strv sv = {NULL, 0};
	char val[64];
	assert_int_equal(client_msg_header_addrs(msg, strlen(msg), "To", &sv), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[1], "b@x.org");
	assert_int_equal(client_msg_header_addrs(msg, strlen(msg), "Bcc", &sv), 0);
	assert_int_equal(sv.n, 3);
	client_strv_free(&sv);
	assert_true(client_msg_has_header(msg, strlen(msg), "subject", val, sizeof val));
	assert_string_equal(val, "s");
	assert_false(client_msg_has_header(msg, strlen(msg), "From", NULL, 0));

	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, msg);
	client_msg_remove_header(&b, "Bcc");
	assert_non_null(buf_cstr(&b));
	assert_null(strstr(b.ptr, "hidden"));
	assert_non_null(strstr(b.ptr, "B <b@x.org>\r\nSubject: s\r\n\r\nTo: body@x.org"));
	buf_free(&b);

	buf_init(&b, 0);
	assert_int_equal(client_msg_to_crlf("a\nb\rc\r\nd", 8, &b), 0);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.ptr, "a\r\nb\r\nc\r\nd\r\n", 12);
	buf_free(&b);
}

static void test_guess_type(void **state)
{
	assert_string_equal(client_mime_guess_type("x", "\x89PNG\r\n\x1a\n....", 12), "image/png");
	assert_string_equal(client_mime_guess_type("a.JPG", "xx", 2), "image/jpeg");
	assert_string_equal(client_mime_guess_type("notes", "plain words\n", 12), "text/plain");
	assert_string_equal(client_mime_guess_type("blob", "\x00\x01\x02", 3),
	                    "application/octet-stream");
	assert_string_equal(client_mime_guess_type("d.docx", "PK\x03\x04", 4),
	                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_headers),
		cmocka_unit_test(test_no_to_means_undisclosed),
		cmocka_unit_test(test_bcc_header_refused),
		cmocka_unit_test(test_8bit_vs_qp),
		cmocka_unit_test(test_multipart_structure),
		cmocka_unit_test(test_addr_split_and_spec),
		cmocka_unit_test(test_header_ops),
		cmocka_unit_test(test_guess_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
