/* Video example: draws a watermark in the top-right corner of the luma plane: a bordered box that
 * darkens what is behind it, with a small square inside moving one step a frame so a viewer sees the
 * function is live. Chroma and the rest of the frame are left untouched. parameter = the border's
 * luma (16...235), 0 for 235. Build: ./build.sh. ABI: Sources/BraidWasm/ABI.md. */
#include "braid_abi.h"

static int border_luma = 235;

BRAID_EXPORT("braid_init") int braid_init(int parameter) {
    if (parameter == 0) return 0;
    if (parameter < 16 || parameter > 235) {
        braid_log_text("overlay: parameter is the border luma, 16...235 (0 = 235)");
        return 1;
    }
    border_luma = parameter;
    return 0;
}

/* The frame is I420, planes back to back: Y (width x height), then U and V ((width+1)/2 x (height+1)/2). */
BRAID_EXPORT("braid_process_video")
int braid_process_video(unsigned char *frame, int width, int height, int frame_index) {
    if (width < 32 || height < 32) return 0; /* too small to mark: leave it */
    int box_w = width / 6, box_h = height / 8;
    int margin = width / 40;
    int x0 = width - margin - box_w, y0 = margin;
    int border = box_h / 12 > 1 ? box_h / 12 : 1;
    unsigned char *y = frame;

    for (int row = y0; row < y0 + box_h; row++) {
        unsigned char *line = y + row * width;
        int edge_row = row < y0 + border || row >= y0 + box_h - border;
        for (int col = x0; col < x0 + box_w; col++) {
            int edge = edge_row || col < x0 + border || col >= x0 + box_w - border;
            line[col] = edge ? (unsigned char)border_luma : (unsigned char)((line[col] >> 1) + 16);
        }
    }
    /* The moving marker: a square of side box_h/3 sweeping the inside of the box. */
    int side = box_h / 3;
    int travel = box_w - 2 * border - side;
    if (side > 0 && travel > 0) {
        int mx = x0 + border + (int)((unsigned)frame_index % (unsigned)travel);
        int my = y0 + (box_h - side) / 2;
        for (int row = my; row < my + side; row++)
            for (int col = mx; col < mx + side; col++) y[row * width + col] = (unsigned char)border_luma;
    }
    return 0;
}
