"""Sequence to sequence (Sutskever et al. 2014): an encoder-decoder LSTM learns to reverse digit
strings of varying length.

    python examples/seq2seq_reverse.py [--quick] [--steps 1500] [--max-len 8] [--teacher-forcing 1.0]

The source is a string of 1 to max-len digits, padded, with its lengths passed to the encoder
(so its final state is taken at each string's real end). The decoder starts from that state with a
start token and must emit the digits in reverse order followed by an end token. Training uses
teacher forcing; evaluation decodes greedily from the model's own predictions. Prints the token
accuracy and the exact-sequence accuracy (every digit and the end token right) on unseen strings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.models import Decoder, Encoder, Seq2Seq

DIGITS, PAD, START, END = 10, 10, 11, 12
VOCAB = 13


def make_batch(n: int, min_len: int, max_len: int, rng: np.random.Generator):
    """Padded sources, their lengths, decoder inputs and targets (PAD where there is nothing)."""
    lengths = rng.integers(min_len, max_len + 1, n)
    src = np.full((n, max_len), PAD, dtype=np.int64)
    target = np.full((n, max_len + 1), PAD, dtype=np.int64)
    for i, length in enumerate(lengths):
        digits = rng.integers(0, DIGITS, length)
        src[i, :length] = digits
        target[i, :length] = digits[::-1]
        target[i, length] = END
    decoder_in = np.concatenate([np.full((n, 1), START), target[:, :-1]], axis=1)
    decoder_in[decoder_in == END] = PAD  # nothing is fed after the end token
    return src, lengths, decoder_in, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short strings, fewer steps (seconds)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--max-len", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--teacher-forcing", type=float, default=1.0, help="teacher forcing ratio in training")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.max_len, args.hidden = 400, 5, 64
    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    model = Seq2Seq(Encoder(VOCAB, 32, args.hidden, padding_idx=PAD),
                    Decoder(VOCAB, 32, args.hidden, padding_idx=PAD))
    optimizer = rb.optim.Adam(model.parameters(), lr=0.005)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        src, lengths, decoder_in, target = make_batch(64, 1, args.max_len, rng)
        logits = model(src, decoder_in, teacher_forcing_ratio=args.teacher_forcing, src_lengths=lengths)
        loss = loss_fn(logits.reshape(-1, VOCAB), rb.tensor(target.reshape(-1)))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % max(args.steps // 5, 1) == 0:
            print(f"step {step:5d}  loss {float(loss.item()):.4f}  ({time.perf_counter() - start:.1f} s)")

    model.eval()
    src, lengths, _, target = make_batch(1000, 1, args.max_len, rng)
    predicted = model.greedy_decode(src, max_len=args.max_len + 1, start_token=START, end_token=END,
                                    src_lengths=lengths)
    predicted = np.pad(predicted, ((0, 0), (0, args.max_len + 1 - predicted.shape[1])), constant_values=END)
    real = target != PAD  # the reversed digits and the end token
    token_accuracy = float((predicted == target)[real].mean())
    exact = float(np.all((predicted == target) | ~real, axis=1).mean())
    print(f"test on 1000 unseen strings of length 1-{args.max_len}: token accuracy {token_accuracy:.3f}, "
          f"exact-sequence accuracy {exact:.3f}")
    for i in range(3):
        shown = "".join(str(d) for d in src[i, :lengths[i]])
        out = "".join(str(d) for d in predicted[i] if d < DIGITS)
        print(f"  {shown:>{args.max_len}s} -> {out}")


if __name__ == "__main__":
    main()
