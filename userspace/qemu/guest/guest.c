// SPDX-License-Identifier: GPL-2.0
/*
 * umem-guest: a tiny x86 guest that keeps checking its own RAM, for
 * migrating a running QEMU (userspace/qemu/demo-qemu.sh).
 *
 * Kernel command line (QEMU -append): "mib=N [print=K]".  The test area is
 * N MiB starting at 2 MiB (the guest itself lives below 2 MiB), so QEMU
 * needs at least N + 2 MiB of RAM.  print=K prints every K-th pass.
 *
 * Each 4 KiB page holds, at every 512 bytes, a slot of two 32-bit words:
 * the page's identity and its generation; every other word of the page
 * holds a fill value derived from the page number.  The guest fills the
 * area (generation 1), then loops forever: pass G checks that every slot
 * holds generation G and writes generation G + 1; it also checks every
 * word of one page in 64 (a different 64th each pass).  After each pass
 * it prints on the serial port (COM1, 0x3f8):
 *
 *   pass G: P pages, M mismatches, total T
 *
 * and each mismatch (at most 8 per pass) as
 *
 *   MISMATCH pass G page N (0xADDR) word W: got 0xX want 0xY
 */
#include <stdint.h>

#define PAGE		4096u
#define WORDS		(PAGE / 4)
#define SLOTS		8u
#define SLOT_STRIDE	(WORDS / SLOTS)
#define AREA_BASE	0x200000u
#define FULL_EVERY	64u
#define MAX_REPORT	8u
#define COM1		0x3f8

struct hvm_start_info {		/* Xen's PVH start info, version 0 part */
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
};
#define HVM_START_MAGIC	0x336ec578u

void guest_main(const struct hvm_start_info *si);

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void serial_init(void)
{
	outb(COM1 + 1, 0x00);	/* no interrupts */
	outb(COM1 + 3, 0x80);	/* DLAB */
	outb(COM1 + 0, 0x01);	/* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);	/* 8N1 */
	outb(COM1 + 2, 0xc7);	/* FIFO on */
}

static void putc_serial(char c)
{
	unsigned int i;

	for (i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)c);
}

static void puts_serial(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s);
	}
}

static void put_dec(uint32_t v)
{
	char buf[11];
	int i = 10;

	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_serial(buf + i);
}

static void put_hex(uint32_t v)
{
	static const char digits[] = "0123456789abcdef";
	char buf[11];
	int i;

	buf[0] = '0';
	buf[1] = 'x';
	for (i = 0; i < 8; i++)
		buf[2 + i] = digits[(v >> (28 - 4 * i)) & 15];
	buf[10] = 0;
	puts_serial(buf);
}

/* "key=NUMBER" in the command line, else @def. */
static uint32_t cmdline_uint(const char *cl, const char *key, uint32_t def)
{
	const char *p = cl;

	while (cl && *p) {
		const char *k = key, *q = p;

		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (!*k && *q == '=' && (p == cl || p[-1] == ' ')) {
			uint32_t v = 0;

			for (q++; *q >= '0' && *q <= '9'; q++)
				v = v * 10 + (uint32_t)(*q - '0');
			return v;
		}
		p++;
	}
	return def;
}

static inline uint32_t slot_id(uint32_t page, uint32_t slot)
{
	return 0xa5000000u ^ (page << 3 | slot);
}

static inline uint32_t slot_gen(uint32_t page, uint32_t gen)
{
	return gen * 0x9e3779b1u + page;
}

static inline uint32_t fill_word(uint32_t page)
{
	return (page * 0x85ebca6bu) ^ 0x5bd1e995u;
}

static uint32_t total_bad;

static void mismatch(uint32_t gen, uint32_t page, uint32_t word, uint32_t got,
		     uint32_t want, uint32_t *bad)
{
	if (*bad < MAX_REPORT) {
		puts_serial("MISMATCH pass ");
		put_dec(gen);
		puts_serial(" page ");
		put_dec(page);
		puts_serial(" (");
		put_hex(AREA_BASE + page * PAGE);
		puts_serial(") word ");
		put_dec(word);
		puts_serial(": got ");
		put_hex(got);
		puts_serial(" want ");
		put_hex(want);
		puts_serial("\n");
	}
	(*bad)++;
}

static void fill(volatile uint32_t *area, uint32_t pages)
{
	for (uint32_t p = 0; p < pages; p++) {
		volatile uint32_t *w = area + p * WORDS;
		uint32_t f = fill_word(p);

		for (uint32_t i = 0; i < WORDS; i++)
			w[i] = f;
		for (uint32_t s = 0; s < SLOTS; s++) {
			w[s * SLOT_STRIDE] = slot_id(p, s);
			w[s * SLOT_STRIDE + 1] = slot_gen(p, 1);
		}
	}
}

/* Pass @gen: check generation @gen everywhere, write @gen + 1. */
static uint32_t pass(volatile uint32_t *area, uint32_t pages, uint32_t gen)
{
	uint32_t bad = 0;

	for (uint32_t p = 0; p < pages; p++) {
		volatile uint32_t *w = area + p * WORDS;

		if (p % FULL_EVERY == gen % FULL_EVERY) {
			uint32_t f = fill_word(p);

			for (uint32_t i = 0; i < WORDS; i++) {
				uint32_t got = w[i];

				if (i % SLOT_STRIDE < 2)
					continue;
				if (got != f)
					mismatch(gen, p, i, got, f, &bad);
			}
		}
		for (uint32_t s = 0; s < SLOTS; s++) {
			uint32_t i = s * SLOT_STRIDE;
			uint32_t id = w[i], g = w[i + 1];

			if (id != slot_id(p, s))
				mismatch(gen, p, i, id, slot_id(p, s), &bad);
			if (g != slot_gen(p, gen))
				mismatch(gen, p, i + 1, g, slot_gen(p, gen), &bad);
			w[i] = slot_id(p, s);
			w[i + 1] = slot_gen(p, gen + 1);
		}
	}
	return bad;
}

void guest_main(const struct hvm_start_info *si)
{
	const char *cl = 0;
	uint32_t mib, pages, every, gen;
	volatile uint32_t *area = (volatile uint32_t *)AREA_BASE;

	serial_init();
	if (si->magic != HVM_START_MAGIC) {
		puts_serial("umem-guest: no PVH start info, stopping\n");
		return;
	}
	if (si->cmdline_paddr && si->cmdline_paddr < 0x100000000ull)
		cl = (const char *)(uintptr_t)si->cmdline_paddr;
	mib = cmdline_uint(cl, "mib", 8);
	every = cmdline_uint(cl, "print", 1);
	if (!every)
		every = 1;
	if (mib < 1 || mib > 3000) {
		puts_serial("umem-guest: mib= must be 1..3000, stopping\n");
		return;
	}
	pages = mib * (0x100000u / PAGE);
	puts_serial("umem-guest: ");
	put_dec(mib);
	puts_serial(" MiB at ");
	put_hex(AREA_BASE);
	puts_serial(", ");
	put_dec(pages);
	puts_serial(" pages; per pass: 8 slots of every page, every word of 1 page in 64\n");
	fill(area, pages);
	puts_serial("umem-guest: filled, generation 1\n");
	for (gen = 1;; gen++) {
		uint32_t bad = pass(area, pages, gen);

		total_bad += bad;
		if (bad || gen % every == 0) {
			puts_serial("pass ");
			put_dec(gen);
			puts_serial(": ");
			put_dec(pages);
			puts_serial(" pages, ");
			put_dec(bad);
			puts_serial(" mismatches, total ");
			put_dec(total_bad);
			puts_serial("\n");
		}
	}
}
