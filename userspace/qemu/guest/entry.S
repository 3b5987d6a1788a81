/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PVH entry of the umem test guest.  QEMU's -kernel loader finds the entry
 * point in the XEN_ELFNOTE_PHYS32_ENTRY note; its PVH option ROM jumps there
 * in 32-bit protected mode, paging off, flat segments, with %ebx holding the
 * physical address of the hvm_start_info structure.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.pvh, "a", @note
	.balign 4
	.long	4			/* name size: "Xen\0" */
	.long	4			/* descriptor size */
	.long	XEN_ELFNOTE_PHYS32_ENTRY
	.asciz	"Xen"
	.balign 4
	.long	pvh_start

	.section .text.entry, "ax"
	.code32
	.globl	pvh_start
pvh_start:
	cli
	cld
	movl	$stack_top, %esp
	xorl	%ebp, %ebp
	pushl	%ebx			/* guest_main(start_info) */
	call	guest_main
1:	hlt
	jmp	1b

	.section .bss
	.balign 16
stack:
	.skip	16384
stack_top:
