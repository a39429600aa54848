// libpng reports errors by longjmp, which Swift cannot catch: these two functions run libpng under
// setjmp and return 0 on success, or -1 with libpng's message in `err`.
#ifndef RMTRAIN_CPNG_SHIM_H
#define RMTRAIN_CPNG_SHIM_H
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *data;
    size_t size, pos;
    char *err;
    size_t errlen;
} rm_png_source;

static void rm_png_read(png_structp png, png_bytep out, png_size_t n) {
    rm_png_source *s = (rm_png_source *)png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "truncated PNG (data ends early)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void rm_png_error(png_structp png, png_const_charp message) {
    rm_png_source *s = (rm_png_source *)png_get_error_ptr(png);
    if (s->errlen > 0) { strncpy(s->err, message, s->errlen - 1); s->err[s->errlen - 1] = 0; }
    png_longjmp(png, 1);
}

static void rm_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

/// Width and height of a PNG in memory (reads the header only). `out` == NULL: header only; otherwise
/// decodes to packed 8-bit RGB (width·height·3 bytes at `out`, `outsize` bytes available), as Pillow's
/// convert("RGB"): palette and 1/2/4-bit grey expanded, 16-bit samples reduced to their high byte, grey
/// replicated, alpha (and tRNS) dropped, Adam7 interlacing undone; no gamma or colour conversion.
static inline int rm_png_decode(const unsigned char *data, size_t size, unsigned int *width, unsigned int *height,
                                unsigned char *out, size_t outsize, char *err, size_t errlen) {
    rm_png_source src = { data, size, 0, err, errlen };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, rm_png_error, rm_png_warning);
    if (!png) { strncpy(err, "out of memory", errlen); return -1; }
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free((void *)rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, rm_png_read);
    png_set_user_limits(png, 1 << 16, 1 << 16);
    png_read_info(png, info);
    *width = png_get_image_width(png, info);
    *height = png_get_image_height(png, info);
    if (out == NULL) { png_destroy_read_struct(&png, &info, NULL); return 0; }
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t stride = (size_t)*width * 3;
    if (png_get_rowbytes(png, info) != stride || outsize < stride * *height) png_error(png, "unexpected PNG layout");
    rows = (png_bytep *)malloc(sizeof(png_bytep) * *height);
    if (!rows) png_error(png, "out of memory");
    for (unsigned int y = 0; y < *height; y++) rows[y] = out + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free((void *)rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
#endif
