/* mar: multi-architecture container images, made visible and made to work. */
#include "cli.h"

int main(int argc, char **argv)
{
    return cmd_main(argc, argv);
}
