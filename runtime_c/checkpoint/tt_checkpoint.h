/* Trained weights that survive a reset: a double-buffered checkpoint of the trainable state.
 *
 * Each save goes to the slot not holding the newest checkpoint: erase, write the state
 * (tt_state serialization, which carries its own CRC-32), then write the slot header last —
 * {"TTCK", sequence number, state length, CRC-32 of these fields}. A power cut at any byte leaves
 * either the new checkpoint complete or the slot invalid, so the other slot (the previous save)
 * is used: at most the last update is lost. Restore picks the valid slot with the highest
 * sequence number and checks the state's CRC before writing a byte into the weights. */
#ifndef TT_CHECKPOINT_H
#define TT_CHECKPOINT_H

#include <stdint.h>

#define TT_CKPT_OK 0
#define TT_CKPT_NONE 1          /* restore: no valid checkpoint (first boot) */
#define TT_CKPT_E_STORAGE (-10) /* the storage backend failed */
#define TT_CKPT_E_TOO_BIG (-11) /* the state does not fit a slot */

/* Saves the current trainable state; returns TT_CKPT_OK or an error. */
int tt_checkpoint_save(void);

/* Restores the newest valid checkpoint into the weights; TT_CKPT_OK, TT_CKPT_NONE, or an
 * error (then the weights are unchanged unless the state itself failed verification after a
 * valid CRC, which cannot happen with intact storage). */
int tt_checkpoint_restore(void);

/* Sequence number of the newest checkpoint saved or restored (0 if none). */
uint32_t tt_checkpoint_seq(void);

#endif
