// C shims for what Swift cannot import: variadic functions (opus_*_ctl, vpx_codec_control_,
// EVP_PKEY_Q_keygen) and function-like macros (vpx_codec_*_init, DTLSv1_*, BIO_set_mem_eof_return).
// Library handles cross this boundary as `void *` so each C type is imported once, from its
// system-library module (COpus, CVPX, COpenSSL), and never twice.
#ifndef C_BRAID_SHIMS_H
#define C_BRAID_SHIMS_H

#include <stddef.h>
#include <stdint.h>

// MARK: Opus (opus_encoder_ctl / opus_decoder_ctl are variadic)

/// `opus_encoder_ctl(enc, request, (opus_int32)value)`; returns an OPUS_* status.
int braid_opus_encoder_set_int(void *encoder, int request, int32_t value);
/// `opus_encoder_ctl(enc, request, &value)`; returns an OPUS_* status.
int braid_opus_encoder_get_int(void *encoder, int request, int32_t *value);
/// `opus_decoder_ctl(dec, request, (opus_int32)value)`.
int braid_opus_decoder_set_int(void *decoder, int request, int32_t value);
/// `opus_decoder_ctl(dec, request, &value)`.
int braid_opus_decoder_get_int(void *decoder, int request, int32_t *value);
/// `opus_decoder_ctl(dec, OPUS_RESET_STATE)`.
int braid_opus_decoder_reset(void *decoder);

// MARK: libvpx (init functions are macros over *_ver; vpx_codec_control_ is variadic)

/// `vpx_codec_enc_init(ctx, iface, cfg, flags)`; `ctx` is a `vpx_codec_ctx_t *`, `iface` a
/// `vpx_codec_iface_t *`, `cfg` a `const vpx_codec_enc_cfg_t *`. Returns a `vpx_codec_err_t`.
int braid_vpx_codec_enc_init(void *ctx, void *iface, const void *cfg, long flags);
/// `vpx_codec_dec_init(ctx, iface, cfg, flags)`; `cfg` is a `const vpx_codec_dec_cfg_t *` or NULL.
int braid_vpx_codec_dec_init(void *ctx, void *iface, const void *cfg, long flags);
/// `vpx_codec_control_(ctx, id, value)` for controls taking an `int`.
int braid_vpx_codec_control_int(void *ctx, int id, int value);
/// `vpx_codec_control_(ctx, id, out)` for controls taking an `int *`.
int braid_vpx_codec_control_int_ptr(void *ctx, int id, int *out);

// MARK: OpenSSL (macros over SSL_ctrl / BIO_ctrl, and the variadic EVP_PKEY_Q_keygen)

/// SSL_OP_NO_QUERY_MTU: built with SSL_OP_BIT, which Swift does not import.
uint64_t braid_ssl_op_no_query_mtu(void);
/// SSL_OP_NO_TICKET.
uint64_t braid_ssl_op_no_ticket(void);
/// `DTLSv1_get_timeout(ssl, &tv)` as milliseconds; returns 1 when a timer is running, else 0.
int braid_dtls_get_timeout_ms(void *ssl, int64_t *milliseconds);
/// `DTLSv1_handle_timeout(ssl)`: 1 when a flight was retransmitted, 0 when none was due, -1 on error.
int braid_dtls_handle_timeout(void *ssl);
/// `BIO_set_mem_eof_return(bio, value)`: with -1 an empty memory BIO reads as "retry", not EOF.
int braid_bio_set_mem_eof_return(void *bio, int value);
/// `SSL_CTX_set_min_proto_version(ctx, version)`; returns 1 on success.
int braid_ssl_ctx_set_min_proto_version(void *ctx, int version);
/// `SSL_CTX_set1_groups_list(ctx, list)`; returns 1 on success.
int braid_ssl_ctx_set1_groups_list(void *ctx, const char *list);
/// `EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")`: a fresh ECDSA P-256 key (an `EVP_PKEY *`), or NULL.
void *braid_evp_pkey_ec_p256_generate(void);

// MARK: Hashes for STUN (RFC 8489 §14.5) without heap allocation

/// HMAC-SHA1 of `data` under `key`, written to `out` (20 bytes). Uses stack state only.
void braid_hmac_sha1(const void *key, size_t key_length, const void *data, size_t data_length, void *out);

// MARK: HMAC-SHA1 for SRTP (RFC 3711 §4.2.1) with the key absorbed once per session

/// Bytes of the state `braid_hmac_sha1_key_init` fills: the two SHA-1 states after the inner and outer
/// padded key blocks (RFC 2104 §2). Allocate it 16-byte aligned.
#define BRAID_HMAC_SHA1_KEY_BYTES 256
/// Absorbs `key ^ ipad` and `key ^ opad` into `state` (BRAID_HMAC_SHA1_KEY_BYTES bytes), so that each tag
/// afterwards costs two SHA-1 blocks less. OpenSSL 3.0's EVP_MAC / HMAC_CTX / EVP_MD_CTX all allocate a
/// provider context on every (re)initialisation; the low-level SHA-1 used here keeps its state in place.
void braid_hmac_sha1_key_init(void *state, const void *key, size_t key_length);
/// HMAC-SHA1(key, `data` || `suffix`) under a key prepared by `braid_hmac_sha1_key_init`, written to
/// `out` (20 bytes). Copies the prepared states to the stack: no heap allocation, `state` is not changed.
void braid_hmac_sha1_tag(const void *state, const void *data, size_t data_length, const void *suffix,
                         size_t suffix_length, void *out);
/// Overwrites `length` bytes at `pointer` with zeros in a way the compiler keeps (`OPENSSL_cleanse`).
void braid_cleanse(void *pointer, size_t length);

// MARK: Memory

/// Bytes of heap in use (glibc `mallinfo2().uordblks`); 0 on other libcs. For memory measurements in tests.
size_t braid_heap_bytes_in_use(void);
/// glibc's `malloc_trim(pad)` (declared in <malloc.h>, which the Glibc module does not export): gives
/// free heap memory back to the system. Returns 1 when memory was released; 0 elsewhere or on other libcs.
int braid_malloc_trim(size_t pad);
/// glibc's `mallopt(M_MMAP_THRESHOLD, bytes)`: allocations of at least `bytes` get their own mapping, which
/// goes back to the system when freed. Setting it also turns off glibc's dynamic threshold, which after the
/// first such free would move later large allocations into the arenas. Returns 1 on success, 0 elsewhere.
int braid_malloc_set_mmap_threshold(size_t bytes);

// MARK: Batched datagram sends (sendmmsg is a GNU extension the Glibc module does not export)

/// A fixed set of send slots: for each, a buffer of `slot_size` bytes, its destination and its length,
/// laid out once as the `mmsghdr`/`iovec` arrays `sendmmsg(2)` takes. Nothing is allocated after creation.
typedef struct braid_send_batch braid_send_batch;
/// A batch of `capacity` slots of `slot_size` bytes each; NULL when out of memory.
braid_send_batch *braid_send_batch_create(unsigned capacity, unsigned slot_size);
void braid_send_batch_destroy(braid_send_batch *batch);
/// The buffer of slot `index` (`slot_size` bytes).
unsigned char *braid_send_batch_slot(braid_send_batch *batch, unsigned index);
/// Sets slot `index`'s length and destination (`address` is a `struct sockaddr *` of `address_length`
/// bytes, at most `sizeof(struct sockaddr_storage)`).
void braid_send_batch_set(braid_send_batch *batch, unsigned index, unsigned length, const void *address,
                          unsigned address_length);
/// `sendmmsg(fd, slots[start ..< start + count], MSG_DONTWAIT)`, retried on EINTR: how many were sent
/// (the kernel stops at the first that fails), or -errno when the first failed.
int braid_send_batch_send(braid_send_batch *batch, int fd, unsigned start, unsigned count);

// MARK: Sending from a chosen local address (the cmsg macros are not visible from Swift)

/// `sendmsg(fd, data, MSG_DONTWAIT)` to `address` with an `IP_PKTINFO` control message whose
/// `ipi_spec_dst` is `source_ipv4` (network byte order): the datagram leaves from that local address
/// whatever the socket is bound to. Retried on EINTR; bytes sent, or -errno.
int braid_sendmsg_from_ipv4(int fd, const void *data, size_t length, const void *address,
                            unsigned address_length, uint32_t source_ipv4);

/// Sets DF on an IPv4 UDP socket's datagrams without path-MTU bookkeeping (`IP_PMTUDISC_PROBE`): media is
/// sized below any path's MTU, and a DF datagram takes no IP ID, which the kernel otherwise draws per
/// datagram from a table shared by every socket. 0, or -errno.
int braid_udp_set_dont_fragment(int fd);

// MARK: Software prefetch

/// The cache line size of the machines Braid runs on (x86-64, arm64).
#define BRAID_CACHE_LINE 64

/// Asks the CPU to bring the cache line holding `address` in, for writing, without waiting for it. A hint:
/// any address is allowed, nothing is read and nothing faults.
static inline void braid_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

/// `braid_prefetch` of the `lines` cache lines from `address` on.
static inline void braid_prefetch_lines(const void *address, int lines) {
    for (int line = 0; line < lines; line++) __builtin_prefetch((const char *)address + line * BRAID_CACHE_LINE, 1, 3);
}

#endif
