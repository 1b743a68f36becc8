/* Training harness: the same source runs on the host and on the Cortex-M7 (QEMU or board).
 *
 * It evaluates the model on the eval set, runs TT_STEPS training steps over the training set
 * (cycling), evaluates again, and prints everything through tt_io so that both runs print
 * byte-identical text. Losses are printed as raw float bits too, for exact comparison. */
#include <stdint.h>

#include "tt_io.h"
#include TT_MODEL_HEADER
#include "dataset.h"

static float logits[TT_NUM_CLASSES];

#ifdef TT_SAMPLES_ARE_INPUTS
/* An int8 model's samples are stored as its quantized input. */
static const int8_t *load(const int8_t *codes) { return codes; }
#else
static float sample[TT_INPUT_ELEMS];

/* Samples are stored as uint8 codes (flash is small); x = scale * code + offset. */
static const float *load(const uint8_t *codes)
{
  for (int i = 0; i < TT_INPUT_ELEMS; i++) sample[i] = tt_data_scale * (float)codes[i] + tt_data_offset;
  return sample;
}
#endif

static int argmax(const float *v, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return best;
}

static int evaluate(const char *when)
{
  int correct = 0;
  for (int i = 0; i < TT_EVAL_N; i++) {
    tt_infer(load(tt_eval_x[i]), logits);
    correct += argmax(logits, TT_NUM_CLASSES) == tt_eval_y[i];
  }
  tt_puts("eval ");
  tt_puts(when);
  tt_puts(" correct ");
  tt_put_int(correct);
  tt_puts(" of ");
  tt_put_int(TT_EVAL_N);
  tt_puts("\n");
  return correct;
}

static uint32_t float_bits(float f)
{
  union { float f; uint32_t u; } pun = {f};
  return pun.u;
}

int main(void)
{
  evaluate("before");
  uint64_t start = tt_cycles();
  for (int step = 0; step < TT_STEPS; step++) {
    int i = step % TT_TRAIN_N;
    float loss = tt_train_step(load(tt_train_x[i]), tt_train_y[i]);
    tt_puts("step ");
    tt_put_int(step);
    tt_puts(" loss ");
    tt_put_hex32(float_bits(loss));
    tt_puts(" ");
    tt_put_float(loss);
    tt_puts("\n");
  }
  uint64_t cycles = tt_cycles() - start;
  evaluate("after");
  tt_puts("train_cycles ");
  tt_put_int((int32_t)(cycles > 0x7fffffff ? 0x7fffffff : cycles));
  tt_puts("\nstack_peak ");
  tt_put_int((int32_t)tt_stack_peak_bytes());
  tt_puts("\n");
  return 0;
}
