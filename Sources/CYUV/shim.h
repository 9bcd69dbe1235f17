// Debian's libyuv-dev ships no pkg-config file: the headers are in /usr/include, the library is -lyuv.
#include <libyuv/scale.h>
#include <libyuv/planar_functions.h>
