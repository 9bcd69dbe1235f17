/* Audio example: multiplies every sample by parameter/100 (parameter = gain in percent, 0...10000),
 * saturating at the 16-bit range. Build: ./build.sh. ABI: Sources/BraidWasm/ABI.md. */
#include "braid_abi.h"

static int gain_percent = 100;

BRAID_EXPORT("braid_init") int braid_init(int parameter) {
    if (parameter < 0 || parameter > 10000) {
        braid_log_text("gain: parameter is the gain in percent, 0...10000");
        return 1;
    }
    gain_percent = parameter;
    return 0;
}

/* Samples are interleaved signed 16-bit little-endian, samples_per_channel * channels of them. */
BRAID_EXPORT("braid_process_audio")
int braid_process_audio(short *samples, int samples_per_channel, int channels, int sample_rate) {
    (void)sample_rate;
    int count = samples_per_channel * channels;
    int gain = gain_percent;
    for (int i = 0; i < count; i++) {
        int v = (int)samples[i] * gain / 100;
        if (v > 32767) v = 32767;
        if (v < -32768) v = -32768;
        samples[i] = (short)v;
    }
    return 0;
}
