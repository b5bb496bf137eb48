/*
 * isolab's stub guest: a few hundred bytes of x86-64 that the VMM loads as an ELF.
 *
 * Why a stub and not Linux? A Linux guest spends its first milliseconds in kernel mode (CPL0).
 * On a host with VT-x/AMD-V that runs natively; on a paravirtual KVM such as kvm_pvm it is
 * emulated instruction by instruction. The stub lets us measure what a VM costs on ANY host:
 * the VMM builds long mode itself (GDT, page tables, EFER/CR0/CR4, syscall MSRs) and starts the
 * vCPU directly in user mode (CPL3) for every workload except the CPL0 probe, so almost no
 * guest kernel-mode instruction ever runs.
 *
 * Calling convention (set by the VMM in the vCPU registers, see crates/microvm/src/stub/mod.rs, StubGuest):
 *   rdi = workload id, rsi = iteration count, rdx = buffer address, rcx = buffer bytes,
 *   rsp = top of the stub stack.
 * Reporting (I/O ports, each write is one VM exit the VMM handles):
 *   (ports above 0xff need `out %al, %dx`)
 *   0x600 EXIT  : al = status, the VM stops (0 = success)
 *   0x601 MARK  : the VMM timestamps a phase boundary (al = mark number)
 *   0x602 NOP   : the port-I/O exit loop's target; the VMM just resumes the guest
 *   0x603 OUTCOME: al = a code for "this host cannot run that"; the VM stops
 *   0x604 RESULT: a figure the guest measured itself (TSC cycles), as two 32-bit writes of eax,
 *                 low half first
 */
    .set PORT_EXIT,    0x600
    .set PORT_MARK,    0x601
    .set PORT_NOP,     0x602
    .set PORT_OUTCOME, 0x603
    .set PORT_RESULT,  0x604
    .set MMIO_NOP,     0xd0001000
    .set OUTCOME_SYSCALL_IN_CPL3, 1

    .macro exit_guest status
    mov $\status, %al
    mov $PORT_EXIT, %dx
    out %al, %dx
    ud2
    .endm

    /* Reports the 64-bit value in rdx through the RESULT port (clobbers rax, rdx). */
    .macro report_rdx
    mov %rdx, %rax
    mov $PORT_RESULT, %dx
    out %eax, %dx
    shr $32, %rax
    out %eax, %dx
    .endm

    .macro mark n
    mov $\n, %al
    mov $PORT_MARK, %dx
    out %al, %dx
    .endm

    /* The CPU loop body: shared, instruction for instruction, with the host reference in
     * crates/microvm/src/stub/host.rs (host_cpu_loop), so the two can be compared. */
    .macro cpu_loop
    xor %eax, %eax
    mov $1, %edx
1:  add %rdx, %rax
    imul $3, %rax, %rax
    xor %rcx, %rax
    dec %rcx
    jnz 1b
    .endm

    .section .text.entry, "ax"
    .code64
    .globl _start
_start:
    cmp $0, %rdi
    je w_true
    cmp $1, %rdi
    je w_syscall
    cmp $2, %rdi
    je w_pio
    cmp $3, %rdi
    je w_mmio
    cmp $4, %rdi
    je w_cpu
    cmp $5, %rdi
    je w_mem
    cmp $6, %rdi
    je w_cpl0_probe
    cmp $7, %rdi
    je w_hang
    cmp $8, %rdi
    je w_triple_fault
    cmp $9, %rdi
    je w_triad
    exit_guest 2

/* true: leave at once. This is the create → first instruction → exit path. */
w_true:
    exit_guest 0

/* syscall loop: CPL3 `syscall` → syscall_entry (CPL0) → `sysretq` → CPL3. */
w_syscall:
    mov %rsi, %rbx
    mark 0
2:  syscall
    dec %rbx
    jnz 2b
    mark 1
    exit_guest 0

/* port I/O exit loop: each `out` leaves the guest, the VMM handles it and re-enters. */
w_pio:
    mov %rsi, %rbx
    mark 0
    mov $PORT_NOP, %dx
2:  out %al, %dx
    dec %rbx
    jnz 2b
    mark 1
    exit_guest 0

/* MMIO exit loop: a store to an address no memory slot backs exits as KVM_EXIT_MMIO. */
w_mmio:
    mov %rsi, %rbx
    mov $MMIO_NOP, %r8
    mark 0
2:  movl %ebx, (%r8)
    dec %rbx
    jnz 2b
    mark 1
    exit_guest 0

/* CPU loop: pure register arithmetic, no exits between the marks. */
w_cpu:
    mov %rsi, %rcx
    mark 0
    cpu_loop
    mark 1
    exit_guest 0

/* memory: one first-touch pass (the VMM's memory is faulted in) then warm passes.
 * rsi = warm passes, rdx = buffer, rcx = bytes (multiple of 8). */
w_mem:
    mov %rdx, %r8
    mov %rcx, %r9
    shr $3, %r9                 /* qwords */
    mov %rsi, %r10
    mark 0
    mov %r8, %rdi
    mov %r9, %rcx
    xor %eax, %eax
    cld
    rep stosq                   /* first touch: write every qword */
    mark 1
3:  mov %r8, %rdi
    mov %r9, %rcx
4:  incq (%rdi)                 /* warm pass: read-modify-write every qword */
    add $8, %rdi
    dec %rcx
    jnz 4b
    dec %r10
    jnz 3b
    mark 2
    exit_guest 0

/* triad: STREAM's a[i] = b[i] + s*c[i] over three f64 arrays that split the buffer in thirds.
 * rsi = passes, rdx = buffer, rcx = bytes (3 x a multiple of 16). First touch sets every f64 to
 * 1.0; then each pass reads b and c and writes a, two doubles per SSE2 step. The same code
 * runs on the host and in a container as crates/bench/src/probes.rs (TRIAD). */
w_triad:
    mov %rdx, %r8               /* a */
    mov %rcx, %r14
    shr $3, %r14                /* qwords in a, b and c */
    mov %rcx, %rax
    xor %edx, %edx
    mov $3, %ecx
    div %rcx
    mov %rax, %r13              /* bytes per array */
    mov %rsi, %r12              /* passes */
    lea (%r8,%r13), %r9         /* b */
    lea (%r9,%r13), %r10        /* c */
    mark 0
    mov %r8, %rdi
    mov %r14, %rcx
    movabs $0x3ff0000000000000, %rax  /* 1.0 */
    cld
    rep stosq                   /* first touch */
    mark 1
    movabs $0x4008000000000000, %rax  /* s = 3.0 */
    movq %rax, %xmm3
    unpcklpd %xmm3, %xmm3
6:  xor %eax, %eax
7:  movupd (%r10,%rax), %xmm0
    mulpd %xmm3, %xmm0
    movupd (%r9,%rax), %xmm1
    addpd %xmm1, %xmm0
    movupd %xmm0, (%r8,%rax)
    add $16, %rax
    cmp %r13, %rax
    jb 7b
    dec %r12
    jnz 6b
    mark 2
    exit_guest 0

/* CPL0 probe: started in CPL0. Time the CPU loop with rdtsc in CPL0, then sysretq to CPL3 and
 * time the same loop there (sysretq is the way down that Linux uses most). The VMM compares the two cycle counts. */
w_cpl0_probe:
    mov %rsi, %r12
    rdtsc
    shl $32, %rdx
    or %rax, %rdx
    mov %rdx, %r13
    mov %r12, %rcx
    cpu_loop
    rdtsc
    shl $32, %rdx
    or %rax, %rdx
    sub %r13, %rdx
    report_rdx                  /* result 0: CPL0 cycles */
    /* sysretq: RIP from RCX, RFLAGS (IOPL=3) from R11, CS/SS from STAR. */
    lea probe_cpl3(%rip), %rcx
    mov $0x3002, %r11
    sysretq
probe_cpl3:
    rdtsc
    shl $32, %rdx
    or %rax, %rdx
    mov %rdx, %r13
    mov %r12, %rcx
    cpu_loop
    rdtsc
    shl $32, %rdx
    or %rax, %rdx
    sub %r13, %rdx
    report_rdx                  /* result 1: CPL3 cycles */
    exit_guest 0

/* hang: a guest that never exits; the VMM's watchdog must stop it. */
w_hang:
    jmp w_hang

/* triple fault: #UD with no IDT → #DF → shutdown (KVM_EXIT_SHUTDOWN). */
w_triple_fault:
    ud2

/* The syscall entry point (MSR_LSTAR). On real hardware virtualization this runs in CPL0.
 * If it finds itself in CPL3 (paravirtual KVM without a PVM-aware guest), it says so. */
    .globl syscall_entry
    .balign 16
syscall_entry:
    mov %cs, %eax
    test $3, %al
    jnz 5f
    sysretq
5:  mov $OUTCOME_SYSCALL_IN_CPL3, %al
    mov $PORT_OUTCOME, %dx
    out %al, %dx
    ud2
