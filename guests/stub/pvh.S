/*
 * isolab's stub guest with a PVH entry: the smallest guest that any PVH-capable VMM can boot
 * (isolab through its kernel path, `qemu-system-x86_64 -M microvm -kernel`), so that process
 * start → guest → exit can be timed the same way under both VMMs.
 *
 * The PVH boot ABI (from Xen, also QEMU's and Firecracker's): an ELF whose note of type
 * XEN_ELFNOTE_PHYS32_ENTRY gives a 32-bit physical entry point. The VMM enters it in 32-bit
 * protected mode, paging off, flat 4 GiB CS/DS/ES/SS, EBX = the hvm_start_info address.
 * Everything beyond that the guest does itself: here it loads its own GDT, turns on PAE, points
 * CR3 at page tables that are already in the image (one 2 MiB identity page, enough for the
 * code), sets EFER.LME, enables paging and far-jumps into 64-bit code — the same walk every
 * 64-bit kernel does at boot. Then it runs `true` (nothing) and writes 0 to the isa-debug-exit
 * port 0xf4, which makes QEMU exit with status (0 << 1) | 1 = 1 and isolab exit with 0.
 */
    .set DEBUG_EXIT_PORT, 0xf4
    .set CR0_PE_PG,  0x80000001
    .set CR4_PAE,    0x20
    .set MSR_EFER,   0xc0000080
    .set EFER_LME,   0x100
    .set PTE_P_RW,   0x3
    .set PDE_2M,     0x83

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                     /* name size: "Xen\0" */
    .long 8                     /* descriptor size (a 64-bit address: readers take 32 or 64 bits) */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
pvh_start:
    lgdt gdt_pointer
    mov $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $CR0_PE_PG, %eax
    mov %eax, %cr0
    ljmp $0x08, $long_mode

    .code64
long_mode:
    /* The workload `true`: nothing to do. Report success and stop the VM. */
    xor %eax, %eax
    out %al, $DEBUG_EXIT_PORT
1:  hlt                         /* a VMM without the exit device: stop here */
    jmp 1b

    .section .rodata
    .balign 8
gdt:
    .quad 0                     /* null */
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .long gdt

    /* Page tables: PML4[0] → PDPT[0] → PD[0] = one 2 MiB page at 0 (identity). */
    .balign 4096
pml4:
    .quad pdpt + PTE_P_RW
    .fill 511, 8, 0
pdpt:
    .quad pd + PTE_P_RW
    .fill 511, 8, 0
pd:
    .quad PDE_2M
    .fill 511, 8, 0
