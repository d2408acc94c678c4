/* vlmcurate: command-line entry point (placeholder until the CLI lands). */
#include <stdio.h>

int main(void)
{
    printf("vlmcurate %s\n", VC_VERSION);
    return 0;
}
