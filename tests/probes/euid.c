/* Prints the real and effective uid it runs with: a set-uid-root copy of it shows whether set-uid bits
   mean anything where it lies. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
    return 0;
}
