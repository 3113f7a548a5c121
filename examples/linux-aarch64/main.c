/* main.c -- runs the dgc-compiled digits CNN once on an embedded image and prints the result. */
#include "digits_demo.h"  /* run_digits_demo(): the model call and the printing */

int main(void)
{
    return run_digits_demo();
}
