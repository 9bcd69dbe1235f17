/* The Braid edge-function ABI, version 1, for C guests built with -nostdlib (see
 * Sources/BraidWasm/ABI.md). Header-only: the examples share the exports every module needs. */
#ifndef BRAID_ABI_H
#define BRAID_ABI_H

#define BRAID_EXPORT(name) __attribute__((export_name(name)))
#define BRAID_IMPORT(name) __attribute__((import_module("braid"), import_name(name)))

/* Host imports. */
BRAID_IMPORT("log") void braid_log(const char *text, int length);
BRAID_IMPORT("time_ms") long long braid_time_ms(void);

static inline int braid_strlen(const char *s) {
    int n = 0;
    while (s[n]) n++;
    return n;
}
static inline void braid_log_text(const char *s) { braid_log(s, braid_strlen(s)); }

BRAID_EXPORT("braid_abi_version") int braid_abi_version(void) { return 1; }

/* One frame buffer at the start of the heap (after data and stack), grown with memory.grow when a
 * frame needs more. The host caps memory, so growth can fail: then 0 tells the host we cannot. */
extern unsigned char __heap_base;

BRAID_EXPORT("braid_frame_buffer") unsigned char *braid_frame_buffer(int bytes) {
    if (bytes <= 0) return 0;
    unsigned long long base = (unsigned long long)(unsigned long)&__heap_base;
    unsigned long long end = base + (unsigned long long)bytes;
    unsigned long long have = (unsigned long long)__builtin_wasm_memory_size(0) * 65536ULL;
    if (end > have) {
        unsigned long long pages = (end - have + 65535ULL) / 65536ULL;
        if (__builtin_wasm_memory_grow(0, (unsigned long)pages) == (unsigned long)-1) return 0;
    }
    return &__heap_base;
}

#endif
