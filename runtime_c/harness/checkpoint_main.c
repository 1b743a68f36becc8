/* Checkpoint harness: restore the newest checkpoint, train TT_STEPS steps and checkpoint after
 * each one. Run it again (a reset) and training continues from the saved weights; cut the
 * power during a save (tt_nv_cut.h) and the next boot restores the save before it. */
#include <stdint.h>

#include "tinytvm.h"
#include "dataset.h" /* after tinytvm.h: it needs TT_INPUT_ELEMS */
#include "tt_checkpoint.h"
#include "tt_io.h"

static float sample[TT_INPUT_ELEMS];

static const float *load(const uint8_t *codes)
{
  for (int i = 0; i < TT_INPUT_ELEMS; i++) sample[i] = tt_data_scale * (float)codes[i] + tt_data_offset;
  return sample;
}

/* The state's own CRC-32 (its last 4 bytes): equal CRCs mean equal weights and momenta. */
static uint32_t state_crc(void)
{
  uint8_t b[4];
  tt_state_read(TT_STATE_BYTES - 4u, b, 4);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void report(const char *what, uint32_t seq)
{
  tt_puts(what);
  tt_puts(" seq ");
  tt_put_int((int32_t)seq);
  tt_puts(" crc ");
  tt_put_hex32(state_crc());
  tt_puts("\n");
}

int main(void)
{
  int rc = tt_checkpoint_restore();
  if (rc == TT_CKPT_NONE) {
    report("boot fresh", 0);
  } else if (rc == TT_CKPT_OK) {
    report("boot restored", tt_checkpoint_seq());
  } else {
    tt_puts("restore failed ");
    tt_put_int(rc);
    tt_puts("\n");
    return 3;
  }
  uint32_t first = tt_checkpoint_seq(); /* continue through the data where the last run stopped */
  for (int step = 0; step < TT_STEPS; step++) {
    int i = (int)((first + (uint32_t)step) % TT_TRAIN_N);
    tt_train_step(load(tt_train_x[i]), tt_train_y[i]);
    rc = tt_checkpoint_save();
    if (rc != TT_CKPT_OK) {
      tt_puts("save failed ");
      tt_put_int(rc);
      tt_puts("\n");
      return 4;
    }
    report("saved", tt_checkpoint_seq());
  }
  return 0;
}
