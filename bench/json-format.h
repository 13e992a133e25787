// SPDX-License-Identifier: Apache-2.0
// The formatting half of bench/json-reader.c: the JSON line gadgetd writes
// for a gadgets/trace_open record, written by hand in C (no libbpf here), so
// that both the reader (`make bench`'s "C reader" column) and
// bench/json-format-cost.c (`make decode-check`'s C reference, counted by
// callgrind on the same recorded records as the agent's decoder) use one
// copy. Included by exactly one translation unit each: everything is static.
//
// Output: `on_record` appends one line per record to `out`, flushed to
// `out_fd` a buffer (at most OUT_CAP bytes) at a time; `records` counts the
// records seen; set `boot_to_unix_ns` (CLOCK_REALTIME - CLOCK_BOOTTIME) first.
#ifndef GADGETD_BENCH_JSON_FORMAT_H
#define GADGETD_BENCH_JSON_FORMAT_H
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// struct event of gadgets/trace_open/program.bpf.c (344 bytes with padding).
struct event {
	uint64_t timestamp_raw;
	char comm[16];
	uint32_t pid, tid;
	uint64_t mntns_id;
	uint32_t uid, gid;
	char pcomm[16];
	uint32_t ppid, ptid;
	int32_t error_raw;
	uint32_t fd, flags_raw, mode_raw;
	char fname[255];
};

#define OUT_CAP (256 * 1024)
// A line is at most ~1.9 KiB (every name byte escaped as `\\xNN`).
#define LINE_MAX_BYTES 4096

static char out[OUT_CAP];
static size_t out_len;
static uint64_t records;
// Where flush_out writes (stdout; the cost harness points it elsewhere).
static int out_fd = 1;
static int64_t boot_to_unix_ns;

static void flush_out(void)
{
	size_t done = 0;
	while (done < out_len) {
		ssize_t n = write(out_fd, out + done, out_len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("json-reader: writing stdout");
			exit(1);
		}
		done += n;
	}
	out_len = 0;
}

static inline char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, s) put(p, s, sizeof(s) - 1)

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_i64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		return put_u64(p, -(uint64_t)v);
	}
	return put_u64(p, v);
}

static const char hex[] = "0123456789abcdef";

// Bytes of the valid UTF-8 character at s (a non-ASCII lead byte), or 0.
static int utf8_len(const unsigned char *s, size_t left)
{
	int n;
	unsigned char b = s[0];
	if (b >= 0xc2 && b <= 0xdf)
		n = 2;
	else if (b >= 0xe0 && b <= 0xef)
		n = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)n > left)
		return 0;
	for (int i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	// Overlong three-byte forms, surrogates, and past U+10FFFF.
	if (b == 0xe0 && s[1] < 0xa0)
		return 0;
	if (b == 0xed && s[1] >= 0xa0)
		return 0;
	if (b == 0xf0 && s[1] < 0x90)
		return 0;
	if (b == 0xf4 && s[1] >= 0x90)
		return 0;
	return n;
}

// A char[n] from the kernel as a JSON string, up to its first NUL: valid
// UTF-8 as it is, other bytes as `\xNN`, a backslash doubled (the agent's
// lossless form), quotes and control characters JSON-escaped.
static char *put_kstr(char *p, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	*p++ = '"';
	for (size_t i = 0; i < n;) {
		unsigned char b = s[i];
		if (b >= 0x20 && b < 0x80 && b != '"' && b != '\\') {
			*p++ = b;
			i++;
		} else if (b == 0) {
			break;
		} else if (b < 0x80) {
			*p++ = '\\';
			switch (b) {
			case '"': *p++ = '"'; break;
			case '\\': p = PUT_LIT(p, "\\\\\\"); break;
			case '\n': *p++ = 'n'; break;
			case '\t': *p++ = 't'; break;
			case '\r': *p++ = 'r'; break;
			default:
				p = PUT_LIT(p, "u00");
				*p++ = hex[b >> 4];
				*p++ = hex[b & 15];
			}
			i++;
		} else {
			int len = utf8_len(s + i, n - i);
			if (len) {
				p = put(p, (const char *)s + i, len);
				i += len;
			} else {
				p = PUT_LIT(p, "\\\\x");
				*p++ = hex[b >> 4];
				*p++ = hex[b & 15];
				i++;
			}
		}
	}
	*p++ = '"';
	return p;
}

// A plain string (names we made or the C library gave) as a JSON string.
static char *put_str(char *p, const char *s)
{
	return put_kstr(p, s, strlen(s));
}

static void put_digits(char *p, uint32_t v, int n)
{
	while (n--) {
		p[n] = '0' + v % 10;
		v /= 10;
	}
}

// Boot-time nanoseconds as `2026-11-24T10:00:00.123456789Z`; the date and
// time of day are worked out once per second.
static char *put_timestamp(char *p, uint64_t boot_ns)
{
	static int64_t cached_sec = INT64_MIN;
	static char cached[20];
	int64_t unix_ns = (int64_t)boot_ns + boot_to_unix_ns;
	int64_t sec = unix_ns / 1000000000;
	uint32_t nsec = unix_ns % 1000000000;
	if (sec != cached_sec) {
		time_t t = sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		put_digits(cached, tm.tm_year + 1900, 4);
		cached[4] = '-';
		put_digits(cached + 5, tm.tm_mon + 1, 2);
		cached[7] = '-';
		put_digits(cached + 8, tm.tm_mday, 2);
		cached[10] = 'T';
		put_digits(cached + 11, tm.tm_hour, 2);
		cached[13] = ':';
		put_digits(cached + 14, tm.tm_min, 2);
		cached[16] = ':';
		put_digits(cached + 17, tm.tm_sec, 2);
		cached[19] = '.';
		cached_sec = sec;
	}
	p = put(p, cached, 20);
	put_digits(p, nsec, 9);
	p += 9;
	*p++ = 'Z';
	return p;
}

// User and group names, the last id of each remembered (as the agent's
// per-thread last-id copy); an id without a name prints as "".
struct name_cache {
	uint32_t last;
	char name[64];
};

static const char *cached_name(struct name_cache *c, uint32_t id, const char *(*lookup)(uint32_t))
{
	if (id != c->last) {
		snprintf(c->name, sizeof(c->name), "%s", lookup(id));
		c->last = id;
	}
	return c->name;
}

static const char *passwd_name(uint32_t uid)
{
	struct passwd *pw = getpwuid(uid);
	return pw ? pw->pw_name : "";
}

static const char *group_entry_name(uint32_t gid)
{
	struct group *gr = getgrgid(gid);
	return gr ? gr->gr_name : "";
}

static struct name_cache users = {UINT32_MAX, ""}, groups = {UINT32_MAX, ""};

static const char *const access_modes[4] = {"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"};
static const struct {
	uint32_t bit;
	const char *name;
} open_flags[] = {
	{00000100, "O_CREAT"},	     {00000200, "O_EXCL"},	  {00000400, "O_NOCTTY"},
	{00001000, "O_TRUNC"},	     {00002000, "O_APPEND"},	  {00004000, "O_NONBLOCK"},
	{00010000, "O_DSYNC"},	     {00020000, "O_ASYNC"},	  {00040000, "O_DIRECT"},
	{00100000, "O_LARGEFILE"},   {00200000, "O_DIRECTORY"},	  {00400000, "O_NOFOLLOW"},
	{01000000, "O_NOATIME"},     {02000000, "O_CLOEXEC"},	  {04000000, "__O_SYNC"},
	{010000000, "O_PATH"},	     {020000000, "__O_TMPFILE"},  {040000000, "FMODE_EXEC"},
	{0100000000, "FMODE_NONOTIFY"},
};

static char *put_flags(char *p, uint32_t flags)
{
	const char *a = access_modes[flags & 3];
	*p++ = '"';
	p = put(p, a, strlen(a));
	uint32_t rest = flags & ~3u;
	for (size_t i = 0; rest && i < sizeof(open_flags) / sizeof(open_flags[0]); i++) {
		if (rest & open_flags[i].bit) {
			*p++ = '|';
			p = put(p, open_flags[i].name, strlen(open_flags[i].name));
			rest &= ~open_flags[i].bit;
		}
	}
	if (rest)
		p += sprintf(p, "|%#x", rest);
	*p++ = '"';
	return p;
}

static char *put_mode(char *p, uint32_t mode)
{
	char type;
	switch (mode & 0170000) {
	case 0140000: type = 's'; break;
	case 0120000: type = 'l'; break;
	case 0060000: type = 'b'; break;
	case 0040000: type = 'd'; break;
	case 0020000: type = 'c'; break;
	case 0010000: type = 'p'; break;
	default: type = '-';
	}
	*p++ = '"';
	*p++ = type;
	static const struct {
		uint32_t r, w, x, special;
		char with_x, without_x;
	} classes[3] = {{0400, 0200, 0100, 04000, 's', 'S'},
			{0040, 0020, 0010, 02000, 's', 'S'},
			{0004, 0002, 0001, 01000, 't', 'T'}};
	for (int i = 0; i < 3; i++) {
		*p++ = mode & classes[i].r ? 'r' : '-';
		*p++ = mode & classes[i].w ? 'w' : '-';
		int x = !!(mode & classes[i].x), s = !!(mode & classes[i].special);
		*p++ = s ? (x ? classes[i].with_x : classes[i].without_x) : (x ? 'x' : '-');
	}
	*p++ = '"';
	return p;
}

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	records++;
	if (size < sizeof(struct event))
		return 0; // not ours: the gadget's records are all this size
	const struct event *e = data;
	if (OUT_CAP - out_len < LINE_MAX_BYTES)
		flush_out();
	char *p = out + out_len;
	p = PUT_LIT(p, "{\"timestamp_raw\":");
	p = put_u64(p, e->timestamp_raw);
	p = PUT_LIT(p, ",\"timestamp\":\"");
	p = put_timestamp(p, e->timestamp_raw);
	p = PUT_LIT(p, "\",\"proc.comm\":");
	p = put_kstr(p, e->comm, sizeof(e->comm));
	p = PUT_LIT(p, ",\"proc.pid\":");
	p = put_u64(p, e->pid);
	p = PUT_LIT(p, ",\"proc.tid\":");
	p = put_u64(p, e->tid);
	p = PUT_LIT(p, ",\"proc.mntns_id\":");
	p = put_u64(p, e->mntns_id);
	p = PUT_LIT(p, ",\"runtime.containerName\":\"\",\"runtime.containerId\":\"\",\"runtime.name\":\"\","
		       "\"runtime.image\":\"\",\"k8s.namespace\":\"\",\"k8s.podName\":\"\",\"k8s.containerName\":\"\"");
	p = PUT_LIT(p, ",\"proc.creds.uid\":");
	p = put_u64(p, e->uid);
	p = PUT_LIT(p, ",\"proc.creds.uid_name\":");
	p = put_str(p, cached_name(&users, e->uid, passwd_name));
	p = PUT_LIT(p, ",\"proc.creds.gid\":");
	p = put_u64(p, e->gid);
	p = PUT_LIT(p, ",\"proc.creds.gid_name\":");
	p = put_str(p, cached_name(&groups, e->gid, group_entry_name));
	p = PUT_LIT(p, ",\"proc.parent.comm\":");
	p = put_kstr(p, e->pcomm, sizeof(e->pcomm));
	p = PUT_LIT(p, ",\"proc.parent.pid\":");
	p = put_u64(p, e->ppid);
	p = PUT_LIT(p, ",\"proc.parent.tid\":");
	p = put_u64(p, e->ptid);
	p = PUT_LIT(p, ",\"error_raw\":");
	p = put_i64(p, e->error_raw);
	p = PUT_LIT(p, ",\"error\":");
	const char *err = e->error_raw ? strerrorname_np(e->error_raw) : "";
	p = put_str(p, err ? err : "");
	p = PUT_LIT(p, ",\"fd\":");
	p = put_u64(p, e->fd);
	p = PUT_LIT(p, ",\"flags_raw\":");
	p = put_u64(p, e->flags_raw);
	p = PUT_LIT(p, ",\"flags\":");
	p = put_flags(p, e->flags_raw);
	p = PUT_LIT(p, ",\"mode_raw\":");
	p = put_u64(p, e->mode_raw);
	p = PUT_LIT(p, ",\"mode\":");
	p = put_mode(p, e->mode_raw);
	p = PUT_LIT(p, ",\"fname\":");
	p = put_kstr(p, e->fname, sizeof(e->fname));
	p = PUT_LIT(p, "}\n");
	out_len = p - out;
	return 0;
}

#endif
