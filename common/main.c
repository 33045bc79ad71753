/* cutover: the executable; everything lives in the core library. */
#include "common/cli.h"

int main(int argc, char **argv) { return cut_main(argc, argv); }
