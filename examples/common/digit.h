/* digit.h -- the input the examples embed: held-out image 0 of dgc.zoo.digits.split() (an 8x8
 * scikit-learn digit, pixel / 16, never trained on). Regenerate with
 *   python3 -c "from dgc.zoo import digits; print(digits.split()[1][0][0])" */
#ifndef DIGIT_H
#define DIGIT_H

#define DIGIT_LABEL 6

static const float DIGIT_IMAGE[64] = {
    0.0f, 0.0f, 0.0625f, 0.8125f, 0.4375f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.4375f, 0.875f, 0.125f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.8125f, 0.3125f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 1.0f, 0.1875f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.1875f, 1.0f, 0.625f, 0.75f, 0.75f, 0.1875f, 0.0f,
    0.0f, 0.1875f, 1.0f, 0.6875f, 0.3125f, 0.5625f, 0.75f, 0.0f,
    0.0f, 0.0625f, 0.8125f, 0.6875f, 0.25f, 0.8125f, 0.6875f, 0.0f,
    0.0f, 0.0f, 0.0625f, 0.75f, 1.0f, 0.6875f, 0.125f, 0.0f
};

#endif /* DIGIT_H */
