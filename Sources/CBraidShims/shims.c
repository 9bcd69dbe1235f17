// See include/CBraidShims.h for why each shim exists.
#define _GNU_SOURCE 1 // sendmmsg, struct mmsghdr
#define OPENSSL_SUPPRESS_DEPRECATED 1 // SHA1_Init & co.: the allocation-free SHA-1 we need for STUN.
#include "CBraidShims.h"

#include <opus/opus.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vpx_encoder.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

int braid_opus_encoder_set_int(void *encoder, int request, int32_t value) {
    return opus_encoder_ctl((OpusEncoder *)encoder, request, (opus_int32)value);
}

int braid_opus_encoder_get_int(void *encoder, int request, int32_t *value) {
    opus_int32 v = 0;
    int status = opus_encoder_ctl((OpusEncoder *)encoder, request, &v);
    *value = (int32_t)v;
    return status;
}

int braid_opus_decoder_set_int(void *decoder, int request, int32_t value) {
    return opus_decoder_ctl((OpusDecoder *)decoder, request, (opus_int32)value);
}

int braid_opus_decoder_get_int(void *decoder, int request, int32_t *value) {
    opus_int32 v = 0;
    int status = opus_decoder_ctl((OpusDecoder *)decoder, request, &v);
    *value = (int32_t)v;
    return status;
}

int braid_opus_decoder_reset(void *decoder) {
    return opus_decoder_ctl((OpusDecoder *)decoder, OPUS_RESET_STATE);
}

int braid_vpx_codec_enc_init(void *ctx, void *iface, const void *cfg, long flags) {
    return (int)vpx_codec_enc_init((vpx_codec_ctx_t *)ctx, (vpx_codec_iface_t *)iface,
                                   (const vpx_codec_enc_cfg_t *)cfg, flags);
}

int braid_vpx_codec_dec_init(void *ctx, void *iface, const void *cfg, long flags) {
    return (int)vpx_codec_dec_init((vpx_codec_ctx_t *)ctx, (vpx_codec_iface_t *)iface,
                                   (const vpx_codec_dec_cfg_t *)cfg, flags);
}

int braid_vpx_codec_control_int(void *ctx, int id, int value) {
    return (int)vpx_codec_control_((vpx_codec_ctx_t *)ctx, id, value);
}

int braid_vpx_codec_control_int_ptr(void *ctx, int id, int *out) {
    return (int)vpx_codec_control_((vpx_codec_ctx_t *)ctx, id, out);
}

uint64_t braid_ssl_op_no_query_mtu(void) { return (uint64_t)SSL_OP_NO_QUERY_MTU; }

uint64_t braid_ssl_op_no_ticket(void) { return (uint64_t)SSL_OP_NO_TICKET; }

int braid_dtls_get_timeout_ms(void *ssl, int64_t *milliseconds) {
    struct timeval tv = {0, 0};
    int running = (int)DTLSv1_get_timeout((SSL *)ssl, &tv);
    *milliseconds = running ? (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000 : 0;
    return running ? 1 : 0;
}

int braid_dtls_handle_timeout(void *ssl) { return (int)DTLSv1_handle_timeout((SSL *)ssl); }

int braid_bio_set_mem_eof_return(void *bio, int value) {
    return (int)BIO_set_mem_eof_return((BIO *)bio, value);
}

int braid_ssl_ctx_set_min_proto_version(void *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version((SSL_CTX *)ctx, version);
}

int braid_ssl_ctx_set1_groups_list(void *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list((SSL_CTX *)ctx, list);
}

void *braid_evp_pkey_ec_p256_generate(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); }

void braid_hmac_sha1(const void *key, size_t key_length, const void *data, size_t data_length, void *out) {
    unsigned char block[SHA_CBLOCK];
    unsigned char inner[SHA_DIGEST_LENGTH];
    memset(block, 0, sizeof block);
    if (key_length > SHA_CBLOCK) {
        SHA1((const unsigned char *)key, key_length, block);
    } else if (key_length > 0) {
        memcpy(block, key, key_length);
    }
    unsigned char pad[SHA_CBLOCK];
    SHA_CTX ctx;

    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, pad, SHA_CBLOCK);
    SHA1_Update(&ctx, data, data_length);
    SHA1_Final(inner, &ctx);

    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, pad, SHA_CBLOCK);
    SHA1_Update(&ctx, inner, SHA_DIGEST_LENGTH);
    SHA1_Final((unsigned char *)out, &ctx);
}

// MARK: HMAC-SHA1 for SRTP

_Static_assert(2 * sizeof(SHA_CTX) <= BRAID_HMAC_SHA1_KEY_BYTES, "BRAID_HMAC_SHA1_KEY_BYTES too small");

void braid_hmac_sha1_key_init(void *state, const void *key, size_t key_length) {
    unsigned char block[SHA_CBLOCK];
    unsigned char pad[SHA_CBLOCK];
    SHA_CTX *contexts = (SHA_CTX *)state;
    memset(block, 0, sizeof block);
    if (key_length > SHA_CBLOCK) {
        SHA1((const unsigned char *)key, key_length, block);
    } else if (key_length > 0) {
        memcpy(block, key, key_length);
    }
    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA1_Init(&contexts[0]);
    SHA1_Update(&contexts[0], pad, SHA_CBLOCK);
    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA1_Init(&contexts[1]);
    SHA1_Update(&contexts[1], pad, SHA_CBLOCK);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

void braid_hmac_sha1_tag(const void *state, const void *data, size_t data_length, const void *suffix,
                         size_t suffix_length, void *out) {
    const SHA_CTX *contexts = (const SHA_CTX *)state;
    unsigned char inner[SHA_DIGEST_LENGTH];
    SHA_CTX ctx = contexts[0];
    SHA1_Update(&ctx, data, data_length);
    if (suffix_length > 0) SHA1_Update(&ctx, suffix, suffix_length);
    SHA1_Final(inner, &ctx);
    ctx = contexts[1];
    SHA1_Update(&ctx, inner, SHA_DIGEST_LENGTH);
    SHA1_Final((unsigned char *)out, &ctx);
}

void braid_cleanse(void *pointer, size_t length) { OPENSSL_cleanse(pointer, length); }

// MARK: Memory

#if defined(__GLIBC__)
#include <malloc.h>
int braid_malloc_trim(size_t pad) { return malloc_trim(pad); }
size_t braid_heap_bytes_in_use(void) { return mallinfo2().uordblks; }
int braid_malloc_set_mmap_threshold(size_t bytes) { return mallopt(M_MMAP_THRESHOLD, (int)bytes); }
#else
int braid_malloc_set_mmap_threshold(size_t bytes) { (void)bytes; return 0; }
size_t braid_heap_bytes_in_use(void) { return 0; }
int braid_malloc_trim(size_t pad) { (void)pad; return 0; }
#endif

// MARK: Batched datagram sends

struct braid_send_batch {
    unsigned capacity;
    unsigned slot_size;
    unsigned char *slab;
    struct mmsghdr *messages;
    struct iovec *vectors;
    struct sockaddr_storage *addresses;
};

braid_send_batch *braid_send_batch_create(unsigned capacity, unsigned slot_size) {
    braid_send_batch *batch = calloc(1, sizeof(*batch));
    if (batch == NULL) return NULL;
    batch->capacity = capacity;
    batch->slot_size = slot_size;
    batch->slab = malloc((size_t)capacity * slot_size);
    batch->messages = calloc(capacity, sizeof(struct mmsghdr));
    batch->vectors = calloc(capacity, sizeof(struct iovec));
    batch->addresses = calloc(capacity, sizeof(struct sockaddr_storage));
    if (batch->slab == NULL || batch->messages == NULL || batch->vectors == NULL || batch->addresses == NULL) {
        braid_send_batch_destroy(batch);
        return NULL;
    }
    for (unsigned i = 0; i < capacity; i++) {
        batch->vectors[i].iov_base = batch->slab + (size_t)i * slot_size;
        batch->messages[i].msg_hdr.msg_iov = &batch->vectors[i];
        batch->messages[i].msg_hdr.msg_iovlen = 1;
        batch->messages[i].msg_hdr.msg_name = &batch->addresses[i];
    }
    return batch;
}

void braid_send_batch_destroy(braid_send_batch *batch) {
    if (batch == NULL) return;
    free(batch->slab);
    free(batch->messages);
    free(batch->vectors);
    free(batch->addresses);
    free(batch);
}

unsigned char *braid_send_batch_slot(braid_send_batch *batch, unsigned index) {
    return batch->slab + (size_t)index * batch->slot_size;
}

void braid_send_batch_set(braid_send_batch *batch, unsigned index, unsigned length, const void *address,
                          unsigned address_length) {
    if (address_length > sizeof(struct sockaddr_storage)) address_length = sizeof(struct sockaddr_storage);
    memcpy(&batch->addresses[index], address, address_length);
    batch->messages[index].msg_hdr.msg_namelen = address_length;
    batch->vectors[index].iov_len = length;
}

int braid_send_batch_send(braid_send_batch *batch, int fd, unsigned start, unsigned count) {
    for (;;) {
        int sent = sendmmsg(fd, batch->messages + start, count, MSG_DONTWAIT);
        if (sent >= 0) return sent;
        if (errno != EINTR) return -errno;
    }
}

int braid_sendmsg_from_ipv4(int fd, const void *data, size_t length, const void *address,
                            unsigned address_length, uint32_t source_ipv4) {
    struct iovec iov = {.iov_base = (void *)data, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message = {
        .msg_name = (void *)address,
        .msg_namelen = address_length,
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof(control.buffer),
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = IPPROTO_IP;
    header->cmsg_type = IP_PKTINFO;
    header->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo info;
    memset(&info, 0, sizeof(info));
    info.ipi_spec_dst.s_addr = source_ipv4;
    memcpy(CMSG_DATA(header), &info, sizeof(info));
    for (;;) {
        ssize_t sent = sendmsg(fd, &message, MSG_DONTWAIT);
        if (sent >= 0) return (int)sent;
        if (errno != EINTR) return -errno;
    }
}

int braid_udp_set_dont_fragment(int fd) {
    int probe = IP_PMTUDISC_PROBE;
    return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe)) == 0 ? 0 : -errno;
}
